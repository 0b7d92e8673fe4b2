export { ERRORS, CONFIG_ERRORS, type ErrorCode, type ConfigErrorCode } from './codes.js'
export { GatewayError, bearerChallenge, tokenMissing, invalidToken, invalidRequest, insufficientScope, type GatewayErrorOptions, type ChallengeParams } from './gateway-error.js'
