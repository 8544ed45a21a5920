//! Error replies: an HTTP status and `{"error": {…}}` (plus `"errors": […]` for 422), from a
//! [`DeskError`] or from the router's own request checks.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::desk::{DeskError, Problem};

/// An error reply: status and the problems to send (the first is the main one).
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorReply {
    /// HTTP status.
    pub status: StatusCode,
    /// At least one problem.
    pub problems: Vec<Problem>,
}

impl ErrorReply {
    /// One problem with a status.
    pub fn new(status: StatusCode, problem: Problem) -> ErrorReply {
        ErrorReply { status, problems: vec![problem] }
    }

    /// 400 with `code`, naming `field` when known.
    pub fn bad_request(code: &str, field: Option<String>, ar: &str, en: String) -> ErrorReply {
        let mut p = Problem::new(code, ar, en);
        p.field = field;
        ErrorReply::new(StatusCode::BAD_REQUEST, p)
    }

    /// 401 `auth.required`: no usable `Authorization: Bearer` header.
    pub fn auth_required() -> ErrorReply {
        ErrorReply::new(
            StatusCode::UNAUTHORIZED,
            Problem::new(
                "auth.required",
                "يلزم تسجيل الدخول",
                "log in first and send the token as `Authorization: Bearer <token>`",
            ),
        )
    }

    /// 403 `auth.role`: a supervisor endpoint called by an officer.
    pub fn supervisor_only() -> ErrorReply {
        DeskError::supervisor_only("do this").into()
    }

    /// 413 `request.too_large`.
    pub fn too_large(limit: usize) -> ErrorReply {
        ErrorReply::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Problem::new(
                "request.too_large",
                "حجم الطلب أكبر من المسموح",
                format!("the request body is larger than {limit} bytes"),
            )
            .with_details(json!({ "limit": limit })),
        )
    }

    /// 415 `request.content_type`.
    pub fn content_type() -> ErrorReply {
        ErrorReply::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Problem::new(
                "request.content_type",
                "يجب أن يكون نوع المحتوى application/json",
                "send the body as JSON with `Content-Type: application/json`",
            ),
        )
    }

    /// 404 `not_found.route`.
    pub fn no_route(method: &str, path: &str) -> ErrorReply {
        ErrorReply::new(
            StatusCode::NOT_FOUND,
            Problem::new("not_found.route", "لا يوجد عنوان بهذا الاسم", format!("no endpoint {method} {path}"))
                .with_details(json!({ "method": method, "path": path })),
        )
    }

    /// 405 `request.method`.
    pub fn method(method: &str, path: &str) -> ErrorReply {
        ErrorReply::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Problem::new(
                "request.method",
                "هذا الإجراء غير متاح على هذا العنوان",
                format!("{path} does not take {method}"),
            )
            .with_details(json!({ "method": method, "path": path })),
        )
    }
}

impl From<DeskError> for ErrorReply {
    fn from(e: DeskError) -> ErrorReply {
        let status = StatusCode::from_u16(e.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let problems = if e.problems.is_empty() {
            vec![Problem::new("internal.no_problem", "خطأ داخلي", "the desk failed without saying why")]
        } else {
            e.problems
        };
        ErrorReply { status, problems }
    }
}

impl IntoResponse for ErrorReply {
    fn into_response(self) -> Response {
        let first = self.problems.first().cloned();
        let body = if self.status == StatusCode::UNPROCESSABLE_ENTITY {
            json!({ "error": first, "errors": self.problems })
        } else {
            json!({ "error": first })
        };
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, code = first.as_ref().map(|p| p.code.as_str()), "api error");
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// The 400 reply for a JSON body that serde refused: syntax (`request.bad_json`, with line and
/// column), an unknown field (`request.unknown_field`), a missing one (`request.missing_field`)
/// or a wrong type or value (`request.bad_value`), naming the field's path.
pub fn json_rejection(err: serde_path_to_error::Error<serde_json::Error>) -> ErrorReply {
    json_rejection_at(&err.path().to_string(), err.inner())
}

/// As [`json_rejection`], for an error at `path` (`.` for the whole document).
pub fn json_rejection_at(path: &str, inner: &serde_json::Error) -> ErrorReply {
    let path = path.to_owned();
    let line = inner.line();
    let column = inner.column();
    let message = inner.to_string();
    let field = |extra: Option<&str>| -> Option<String> {
        let base = if path == "." { String::new() } else { path.clone() };
        match extra {
            Some(x) if base.is_empty() => Some(x.to_owned()),
            Some(x) if base != x && !base.ends_with(&format!(".{x}")) => Some(format!("{base}.{x}")),
            _ if base.is_empty() => None,
            _ => Some(base),
        }
    };
    let quoted = |msg: &str| msg.split('`').nth(1).map(str::to_owned);
    use serde_json::error::Category;
    let (code, field, ar) = match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => ("request.bad_json", None, "الطلب ليس JSON صحيحًا"),
        Category::Data if message.starts_with("unknown field") => {
            ("request.unknown_field", field(quoted(&message).as_deref()), "حقل غير معروف")
        }
        Category::Data if message.starts_with("missing field") => {
            ("request.missing_field", field(quoted(&message).as_deref()), "حقل مطلوب ناقص")
        }
        Category::Data => ("request.bad_value", field(None), "قيمة غير صحيحة"),
    };
    let mut reply = ErrorReply::bad_request(code, field, ar, message);
    reply.problems[0].details = Some(json!({ "line": line, "column": column }));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        a: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
        list: Vec<Inner>,
    }

    fn reject(text: &str) -> Problem {
        let de = &mut serde_json::Deserializer::from_str(text);
        let err = serde_path_to_error::deserialize::<_, Outer>(de).unwrap_err();
        json_rejection(err).problems.remove(0)
    }

    #[test]
    fn names_the_field_of_each_kind_of_refusal() {
        let p = reject(r#"{"inner": {"a": 1, "b": 2}, "list": []}"#);
        assert_eq!((p.code.as_str(), p.field.as_deref()), ("request.unknown_field", Some("inner.b")));
        let p = reject(r#"{"inner": {}, "list": []}"#);
        assert_eq!((p.code.as_str(), p.field.as_deref()), ("request.missing_field", Some("inner.a")));
        let p = reject(r#"{"inner": {"a": 1}, "list": [{"a": "x"}]}"#);
        assert_eq!((p.code.as_str(), p.field.as_deref()), ("request.bad_value", Some("list[0].a")));
        let p = reject(r#"{"inner": {"a": 1}, "#);
        assert_eq!((p.code.as_str(), p.field), ("request.bad_json", None));
        let p = reject(r#"{"zzz": 1}"#);
        assert_eq!((p.code.as_str(), p.field.as_deref()), ("request.unknown_field", Some("zzz")));
    }
}
