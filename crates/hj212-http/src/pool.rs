//! Rate, mark and alert queries run on blocking threads, at most `http.max_concurrent_queries`
//! at once: however many clients ask, they cannot take the CPU and blocking threads that
//! ingest (archive fsyncs, the store feed) needs. A query waits `http.query_wait_secs` for its
//! turn, then the client gets 503 with Retry-After.

use std::sync::Arc;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse as _, Response};
use tokio::sync::Semaphore;

use crate::error::{ApiError, error};

/// The bounded pool of query slots.
#[derive(Debug, Clone)]
pub(crate) struct QueryPool {
    slots: Arc<Semaphore>,
    size: usize,
    wait: Duration,
}

impl QueryPool {
    pub(crate) fn new(size: usize, wait: Duration) -> Self {
        Self { slots: Arc::new(Semaphore::new(size)), size, wait }
    }

    /// Runs blocking store or database work once a slot is free; a failure is a 500 naming it.
    /// The slot is held until the work ends, even if the client has gone (a timed-out query
    /// still occupies its thread).
    pub(crate) async fn run<T, E>(&self, work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, ApiError>
    where
        T: Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let Ok(Ok(slot)) = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await else {
            let secs = self.wait.as_secs().max(1);
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "busy: {} queries are running (http.max_concurrent_queries) and none finished within {secs} s; \
                     retry later",
                    self.size
                ),
            )
            .retry_after(secs));
        };
        let internal = |message: String| error(StatusCode::INTERNAL_SERVER_ERROR, message);
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(|e| internal(e.to_string()))
    }

    /// As [`QueryPool::run`] for a JSON answer, serialized (and its value dropped) on the
    /// query's thread too: a year of evidence for 20 sites is some 30 MB of JSON, and writing
    /// it out on a runtime worker stalled ingest's acknowledgements for a second (found by the
    /// admin trial of `scripts/reliability`).
    pub(crate) async fn run_json<T, E>(
        &self,
        work: impl FnOnce() -> Result<T, E> + Send + 'static,
    ) -> Result<Response, ApiError>
    where
        T: serde::Serialize,
        E: std::fmt::Display + Send + 'static,
    {
        let body = self
            .run(move || {
                let value = work().map_err(|e| e.to_string())?;
                serde_json::to_vec(&value).map_err(|e| e.to_string())
            })
            .await?;
        Ok(([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_beyond_the_pool_waits_then_gets_503_with_retry_after() {
        let pool = QueryPool::new(1, Duration::from_millis(100));
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, has_started) = std::sync::mpsc::channel::<()>();
        let running = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move || {
                    let _ = started.send(());
                    held.recv().map(|()| 1)
                })
                .await
            })
        };
        tokio::task::spawn_blocking(move || has_started.recv()).await.unwrap().unwrap();
        let refused = pool.run(|| Ok::<_, String>(2)).await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = axum::response::IntoResponse::into_response(refused);
        assert_eq!(response.headers()["retry-after"], "1");
        release.send(()).unwrap();
        assert_eq!(running.await.unwrap().unwrap(), 1);
        assert_eq!(pool.run(|| Ok::<_, String>(3)).await.unwrap(), 3, "the slot is free again");
    }

    /// Records the thread that serializes it.
    struct Witness(std::sync::mpsc::Sender<std::thread::ThreadId>);

    impl serde::Serialize for Witness {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let _ = self.0.send(std::thread::current().id());
            serializer.serialize_str("witness")
        }
    }

    /// On a current-thread runtime the handler runs on the test's thread: a JSON answer must
    /// be written out elsewhere, on the query's blocking thread.
    #[tokio::test]
    async fn a_json_answer_is_serialized_on_the_query_thread_not_the_runtime() {
        let pool = QueryPool::new(1, Duration::from_secs(1));
        let (seen, serialized_on) = std::sync::mpsc::channel();
        let response = pool.run_json(move || Ok::<_, String>(Witness(seen))).await.unwrap();
        assert_ne!(serialized_on.recv().unwrap(), std::thread::current().id());
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"\"witness\"");
    }
}
