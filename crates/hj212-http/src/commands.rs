//! Host commands to loggers (反控): `POST /api/v1/sites/{mn}/commands` (admin token) queues
//! one, `GET /api/v1/sites/{mn}/commands` and `GET /api/v1/commands/{id}` show their states,
//! `DELETE /api/v1/commands/{id}` cancels a queued one. The archive holds every command sent
//! and every answer; these endpoints show the state machine (docs/commands.md).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hj212_commands::{CancelError, Origin, SubmitError, parse_id};
use serde::Deserialize;

use crate::AppState;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiPath, ApiQuery, NoParams, error};

/// A command as posted: CN and CP keys as in the standard.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandBody {
    pub cn: String,
    #[serde(default)]
    pub cp: BTreeMap<String, String>,
    /// How long it may wait for its site's connection (default `commands.ttl_secs`).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// `?limit=` for a site's list (default 100, at most 1000).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    #[serde(default)]
    limit: Option<usize>,
}

/// Longest time to live a command may ask for: a week (the rate cutoff is 10 days by default).
const MAX_TTL_SECS: u64 = 7 * 86_400;

pub(crate) async fn submit(
    State(state): State<AppState>,
    ApiPath(mn): ApiPath<String>,
    ApiQuery(NoParams {}): ApiQuery<NoParams>,
    JsonBody(body): JsonBody<CommandBody>,
) -> Result<Response, ApiError> {
    let command = queue(&state, &mn, body).await?;
    Ok((StatusCode::ACCEPTED, Json(command.to_json())).into_response())
}

/// Checks a command and queues it for its site (from the API or the console).
pub(crate) async fn queue(state: &AppState, mn: &str, body: CommandBody) -> Result<hj212_commands::Command, ApiError> {
    let Some(site) = state.shared.registry.snapshot().get(mn).cloned() else {
        return Err(error(StatusCode::NOT_FOUND, format!("no configured site with MN {mn}")));
    };
    let spec = hj212_commands::check(&body.cn, &body.cp, site.config.allow_raw_commands)
        .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    let ttl_ms = match body.ttl_secs {
        Some(secs) if secs == 0 || secs > MAX_TTL_SECS => {
            return Err(error(StatusCode::BAD_REQUEST, format!("ttl_secs: {secs} is outside 1..={MAX_TTL_SECS}")));
        }
        Some(secs) => Some(i64::try_from(secs * 1000).unwrap_or(i64::MAX)),
        None => None,
    };
    let (hub, mn) = (state.shared.commands.clone(), mn.to_owned());
    let submitted = state
        .queries
        .run(move || Ok::<_, String>(hub.submit(&mn, spec, Origin::Api, ttl_ms, hj212_commands::now_ms())))
        .await?;
    submitted.map_err(|e| match e {
        SubmitError::SiteFull { .. } | SubmitError::TotalFull { .. } => {
            error(StatusCode::TOO_MANY_REQUESTS, e.to_string()).retry_after(10)
        }
        SubmitError::Book(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    })
}

pub(crate) async fn list(
    State(state): State<AppState>,
    ApiPath(mn): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Response, ApiError> {
    if !state.shared.registry.snapshot().contains_key(&mn) {
        return Err(error(StatusCode::NOT_FOUND, format!("no configured site with MN {mn}")));
    }
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(error(StatusCode::BAD_REQUEST, format!("limit: {limit} is outside 1..=1000")));
    }
    let hub = state.shared.commands.clone();
    state
        .queries
        .run_json(move || {
            let commands = hub.of_site(&mn, limit)?;
            Ok::<_, hj212_commands::BookError>(
                commands.iter().map(hj212_commands::Command::to_json).collect::<Vec<_>>(),
            )
        })
        .await
}

fn id_of(text: &str) -> Result<u64, ApiError> {
    parse_id(text).ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no command {text}")))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(NoParams {}): ApiQuery<NoParams>,
) -> Result<Response, ApiError> {
    let number = id_of(&id)?;
    let hub = state.shared.commands.clone();
    match state.queries.run(move || hub.get(number)).await? {
        Some(command) => Ok(Json(command.to_json()).into_response()),
        None => Err(error(StatusCode::NOT_FOUND, format!("no command {id}"))),
    }
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(NoParams {}): ApiQuery<NoParams>,
) -> Result<Response, ApiError> {
    let number = id_of(&id)?;
    let hub = state.shared.commands.clone();
    let cancelled = state.queries.run(move || Ok::<_, String>(hub.cancel(number, hj212_commands::now_ms()))).await?;
    match cancelled {
        Ok(command) => Ok(Json(command.to_json()).into_response()),
        Err(e @ CancelError::NotFound(_)) => Err(error(StatusCode::NOT_FOUND, e.to_string())),
        Err(e @ CancelError::NotQueued { .. }) => Err(error(StatusCode::CONFLICT, e.to_string())),
        Err(CancelError::Book(e)) => Err(error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}
