//! CloudWatch Logs reads: the events of a function's log group (`/aws/lambda/NAME`),
//! for `deploy logs` and the tests that look for a request's `START`/`REPORT` lines.

use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;

use super::Clients;

/// One log line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogEvent {
    pub id: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub stream: String,
    pub message: String,
}

/// The log group Lambda writes a function's output to.
pub fn function_group(function: &str) -> String {
    format!("/aws/lambda/{function}")
}

/// Every event of `group` since `start_ms` (inclusive), oldest first, containing
/// `filter` when given. A group that does not exist yet has no events.
pub async fn events(
    c: &Clients,
    group: &str,
    start_ms: i64,
    filter: Option<&str>,
) -> Result<Vec<LogEvent>, String> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let mut call = c
            .logs
            .filter_log_events()
            .log_group_name(group)
            .start_time(start_ms)
            .set_next_token(token.take());
        if let Some(text) = filter {
            call = call.filter_pattern(quoted_term(text));
        }
        let page = match call.send().await {
            Ok(p) => p,
            Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(Vec::new()),
            Err(e) => {
                return Err(format!(
                    "reading {group}: {}",
                    e.message()
                        .map(String::from)
                        .unwrap_or_else(|| e.to_string())
                ))
            }
        };
        out.extend(page.events().iter().map(|e| LogEvent {
            id: e.event_id().unwrap_or_default().to_string(),
            timestamp: e.timestamp().unwrap_or_default(),
            stream: e.log_stream_name().unwrap_or_default().to_string(),
            message: e.message().unwrap_or_default().trim_end().to_string(),
        }));
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    out.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// A filter pattern matching events that contain `text` as is: CloudWatch reads bare
/// words as separate terms and gives `-`, `?` and quotes meanings of their own.
fn quoted_term(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_text_is_one_quoted_term() {
        assert_eq!(quoted_term("Task timed out"), "\"Task timed out\"");
        assert_eq!(quoted_term("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(
            function_group("trivia-dev-api"),
            "/aws/lambda/trivia-dev-api"
        );
    }
}
