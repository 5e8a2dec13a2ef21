// @symphony/client: the web app's side of Symphony. See README.md.

export {
  SymphonyClient,
  createSymphonyClient,
  type EmailBatchDispatch,
  type EmailDispatch,
  type EmailLeft,
  type EmailStatus,
  type FailedEmail,
  type UnitDispatch,
} from "./client.js";
export { resourceNames, type Credentials, type SymphonyClientOptions } from "./config.js";
export {
  SymphonyAwsError,
  SymphonyConfigError,
  SymphonyConflictError,
  SymphonyDispatchError,
  SymphonyError,
  SymphonyHttpError,
  SymphonyValidationError,
  type FieldProblem,
} from "./errors.js";
export {
  GLOBAL_FLAG,
  JOB_FLAGS,
  bucket,
  routeFor,
  type FlagEvaluation,
  type FlagName,
  type FlagState,
  type Job,
  type Route,
} from "./flags.js";
export {
  HEALTH_PATH,
  METRICS_PATH,
  type Health,
  type HealthCheck,
  type JobMetrics,
  type Metrics,
  type PathFigures,
  type Percentiles,
  type QueueDepths,
} from "./api.js";
export {
  MAX_HTML_BYTES,
  MAX_KEY_BYTES,
  MAX_SUBJECT_CHARS,
  characterProblem,
  isE164,
  isEmailAddress,
  validateCampaignProcessingMessage,
  validateEmailMessage,
  validateSmsDripMessage,
} from "./validation.js";
export { MAX_BATCH_ENTRIES, fifoId, planRequests } from "./queues.js";
export * from "./generated/contract.js";
