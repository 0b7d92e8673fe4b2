export { ERRORS, CONFIG_ERRORS, type ErrorCode, type ConfigErrorCode } from './codes.js'
export { GatewayError, bearerChallenge, tokenMissing, invalidToken, invalidRequest, insufficientScope, type GatewayErrorOptions, type ChallengeParams, type ErrCause } from './gateway-error.js'
