export { ERRORS, type ErrorCode } from './codes.js'
export { GatewayError, bearerChallenge, tokenMissing, invalidToken, invalidRequest, insufficientScope, type GatewayErrorOptions, type ChallengeParams } from './gateway-error.js'
