export { ERRORS, type ErrorCode } from './codes.js'
export { GatewayError, bearerChallenge, tokenMissing, invalidToken, invalidRequest, insufficientScope, type GatewayErrorOptions } from './gateway-error.js'
