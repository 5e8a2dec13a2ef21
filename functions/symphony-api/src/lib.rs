//! `symphony-api`: `GET /api/symphony/health` and `GET /api/symphony/metrics?minutes=N`,
//! served by a function URL with `AWS_IAM` auth (Lambda checks the caller's signature
//! before this code runs; nothing here is readable unauthenticated).
//!
//! Health is 200 when every check is healthy and 503 when any is not, JSON either way.
//! Metrics are per job, symphony beside legacy, over the last `minutes` (default 60,
//! 1 to 1440; anything else is a 400 that says so).

use std::convert::Infallible;

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response, service_fn};
use symphony_adapters::operations::{Deployment, Operations, parse_minutes};
use symphony_core::config::{ConfigError, EnvSource, ProcessEnv, required};

pub const HEALTH_PATH: &str = "/api/symphony/health";
pub const METRICS_PATH: &str = "/api/symphony/metrics";

/// The function: the deployment it reports on.
#[derive(Debug, Clone)]
pub struct SymphonyApi {
    operations: Operations,
}

impl SymphonyApi {
    /// `SYMPHONY_STACK` names the deployment; `EMAIL_SCHEDULE`, `CAMPAIGN_SCHEDULE` and
    /// `SMS_SCHEDULE` its schedules (the template's defaults when unset).
    pub fn from_env(env: &dyn EnvSource, sdk: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let stack = required(env, "SYMPHONY_STACK")?;
        Ok(Self {
            operations: Operations::new(Deployment::new(stack), sdk, |name| env.get(name)),
        })
    }

    /// Answers one request; every answer is JSON, errors included.
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Infallible> {
        let path = request.uri().path().trim_end_matches('/').to_owned();
        if path != HEALTH_PATH && path != METRICS_PATH {
            return Ok(json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({ "error": format!("no such endpoint: {path}"),
                    "endpoints": [HEALTH_PATH, METRICS_PATH] }),
            ));
        }
        if request.method() != Method::GET {
            return Ok(json(
                StatusCode::METHOD_NOT_ALLOWED,
                &serde_json::json!({ "error": format!("{} takes GET only", path) }),
            ));
        }
        let now = chrono::Utc::now();
        if path == HEALTH_PATH {
            let health = self.operations.health(now).await;
            let status = if health.is_healthy() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return Ok(json(status, &health));
        }
        let query = request.query_string_parameters();
        let minutes = match parse_minutes(query.first("minutes")) {
            Ok(minutes) => minutes,
            Err(reason) => {
                return Ok(json(
                    StatusCode::BAD_REQUEST,
                    &serde_json::json!({ "error": reason }),
                ));
            }
        };
        match self.operations.metrics(minutes, now).await {
            Ok(metrics) => Ok(json(StatusCode::OK, &metrics)),
            Err(error) => {
                let reason = symphony_core::error::chain(&error);
                tracing::error!(error = %reason, "INFRASTRUCTURE FAULT: metrics could not be read");
                Ok(json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({ "error": "metrics could not be read", "cause": reason }),
                ))
            }
        }
    }
}

fn json<T: serde::Serialize + ?Sized>(status: StatusCode, body: &T) -> Response<Body> {
    let text = serde_json::to_string_pretty(body).unwrap_or_else(|_| "{}".to_owned());
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        lambda_http::http::header::CONTENT_TYPE,
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    response
}

pub async fn run() -> Result<(), lambda_http::Error> {
    symphony_aws::telemetry::init();
    let sdk = symphony_aws::load_sdk_config().await;
    let api = SymphonyApi::from_env(&ProcessEnv, &sdk)?;
    lambda_http::run(service_fn(|request: Request| api.handle(request))).await
}
