//! What an SDK error means to the engine: gone, throttled, transient, busy or fatal.
//! The decision is a pure function of what the error carries, so it is tested here
//! without a service.

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

use crate::provider::{ErrorClass, ProviderError};

/// Error codes that mean "not there" across services.
fn is_not_found(code: &str) -> bool {
    code.ends_with(".NotFound")
        || code.ends_with("NotFound")
        || code.ends_with("NotFoundFault")
        || code.ends_with("NotFoundException")
        || matches!(
            code,
            "NoSuchEntity" | "ParameterNotFound" | "InvalidAllocationID.NotFound"
        )
}

/// How an answer failed before any service error code: no answer at all (timeout,
/// connection, unreadable response) is always worth another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    NoAnswer,
    Answered,
}

/// The class of a failure from what it carries.
pub(crate) fn class_of(
    delivery: Delivery,
    code: Option<&str>,
    status: Option<u16>,
    message: &str,
) -> ErrorClass {
    if delivery == Delivery::NoAnswer {
        return ErrorClass::Retryable;
    }
    match code {
        Some(c) if is_not_found(c) => ErrorClass::NotFound,
        Some(
            "RequestLimitExceeded"
            | "Throttling"
            | "ThrottlingException"
            | "TooManyRequestsException"
            | "RequestThrottled"
            | "SlowDown",
        ) => ErrorClass::Throttled,
        Some(
            "DependencyViolation"
            | "InvalidGroup.InUse"
            | "ResourceConflictException"
            | "ResourceInUseException"
            | "InvalidServerlessCacheStateFault"
            | "ConcurrentModificationException"
            | "IncorrectState"
            | "ConflictException",
        ) => ErrorClass::Conflict,
        // Lambda cannot assume a role that IAM has not propagated yet.
        Some("InvalidParameterValueException")
            if message.contains("cannot be assumed")
                || message.contains("CreateNetworkInterface") =>
        {
            ErrorClass::Retryable
        }
        Some(
            "InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable"
            | "ServiceException",
        ) => ErrorClass::Retryable,
        _ if status.is_some_and(|s| s >= 500) => ErrorClass::Retryable,
        _ => ErrorClass::Fatal,
    }
}

/// Maps an SDK error to the engine's classes.
pub(crate) fn classify<E>(e: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_string);
    let message = e.message().map(str::to_string).unwrap_or_else(|| match &e {
        SdkError::TimeoutError(_) => "the request timed out".into(),
        SdkError::DispatchFailure(d) => format!("the request could not be sent: {d:?}"),
        other => match status {
            Some(s) => format!("{other} (HTTP {s}, no message)"),
            None => format!("{other}"),
        },
    });
    let delivery = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Delivery::NoAnswer
        }
        _ => Delivery::Answered,
    };
    ProviderError {
        class: class_of(delivery, code.as_deref(), status, &message),
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(code: &str) -> ErrorClass {
        class_of(Delivery::Answered, Some(code), Some(400), "")
    }

    #[test]
    fn not_found_codes_of_every_service() {
        for code in [
            "InvalidVpcID.NotFound",
            "ResourceNotFoundException",
            "ServerlessCacheNotFoundFault",
            "NoSuchEntity",
            "ParameterNotFound",
            "NotFoundException",
            "UserNotFoundException",
        ] {
            assert_eq!(class(code), ErrorClass::NotFound, "{code}");
        }
    }

    #[test]
    fn throttles_conflicts_and_fatal_errors() {
        assert_eq!(class("RequestLimitExceeded"), ErrorClass::Throttled);
        assert_eq!(class("TooManyRequestsException"), ErrorClass::Throttled);
        assert_eq!(class("DependencyViolation"), ErrorClass::Conflict);
        assert_eq!(class("ResourceConflictException"), ErrorClass::Conflict);
        assert_eq!(class("InvalidParameterValue"), ErrorClass::Fatal);
        assert_eq!(class("AccessDenied"), ErrorClass::Fatal);
        assert_eq!(class("InvalidParameterValueException"), ErrorClass::Fatal);
    }

    #[test]
    fn no_answer_and_server_errors_are_retried() {
        assert_eq!(
            class_of(Delivery::NoAnswer, None, None, "timed out"),
            ErrorClass::Retryable
        );
        // Even a code that would be fatal: the call may not have been read at all.
        assert_eq!(
            class_of(Delivery::NoAnswer, Some("AccessDenied"), None, ""),
            ErrorClass::Retryable
        );
        assert_eq!(
            class_of(Delivery::Answered, None, Some(503), ""),
            ErrorClass::Retryable
        );
        assert_eq!(class("InternalFailure"), ErrorClass::Retryable);
    }

    #[test]
    fn iam_propagation_delays_are_retried() {
        let m = "The role defined for the function cannot be assumed by Lambda.";
        assert_eq!(
            class_of(
                Delivery::Answered,
                Some("InvalidParameterValueException"),
                Some(400),
                m
            ),
            ErrorClass::Retryable
        );
    }
}
