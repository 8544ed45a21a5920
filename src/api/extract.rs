//! What the router takes from a request before the desk sees it: the session (bearer token),
//! the supervisor check, strict JSON bodies and query strings. Every refusal is an
//! [`ErrorReply`] naming what is wrong.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use super::ApiState;
use super::desk::{Desk, Session, Token};
use super::error::{ErrorReply, json_rejection, json_rejection_at};

/// Largest JSON body accepted, except imports.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Largest reference-data bundle accepted by `POST /import`.
pub const IMPORT_LIMIT: usize = 4 * 1024 * 1024;

/// The token of `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<Token> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| Token(token.to_owned()))
}

/// An authenticated caller (any role): `Authorization: Bearer <token>` checked by the desk.
pub struct Authed(pub Session);

impl<D: Desk> FromRequestParts<ApiState<D>> for Authed {
    type Rejection = ErrorReply;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState<D>) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(ErrorReply::auth_required)?;
        Ok(Authed(state.desk.session(&token).await?))
    }
}

/// An authenticated supervisor: 401 without a valid session, 403 `auth.role` for an officer.
pub struct Supervisor(pub Session);

impl<D: Desk> FromRequestParts<ApiState<D>> for Supervisor {
    type Rejection = ErrorReply;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState<D>) -> Result<Self, Self::Rejection> {
        let Authed(session) = Authed::from_request_parts(parts, state).await?;
        if session.is_supervisor() { Ok(Supervisor(session)) } else { Err(ErrorReply::supervisor_only()) }
    }
}

/// An authenticated caller of the event stream: the bearer header, or `?token=` because a
/// browser's `EventSource` cannot set headers.
pub struct StreamAuthed(pub Session);

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

impl<D: Desk> FromRequestParts<ApiState<D>> for StreamAuthed {
    type Rejection = ErrorReply;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState<D>) -> Result<Self, Self::Rejection> {
        let from_query = || {
            Query::<TokenQuery>::try_from_uri(&parts.uri)
                .ok()
                .and_then(|q| q.0.token)
                .filter(|t| !t.is_empty())
                .map(Token)
        };
        let token = bearer(&parts.headers).or_else(from_query).ok_or_else(ErrorReply::auth_required)?;
        Ok(StreamAuthed(state.desk.session(&token).await?))
    }
}

/// Whether the request says its body is JSON (`application/json`, parameters allowed).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// The body's bytes, up to `limit` (the route's `DefaultBodyLimit` enforces it).
async fn body_bytes<S: Send + Sync>(req: Request, state: &S, limit: usize) -> Result<Bytes, ErrorReply> {
    if !is_json(req.headers()) {
        return Err(ErrorReply::content_type());
    }
    Bytes::from_request(req, state).await.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ErrorReply::too_large(limit)
        }
        other => ErrorReply::bad_request("request.body", None, "تعذر قراءة الطلب", other.body_text()),
    })
}

/// A JSON body parsed strictly into `T`: 415 unless `Content-Type: application/json`, 413 above
/// [`BODY_LIMIT`], 400 naming the field for bad JSON, unknown or missing fields and wrong types.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ErrorReply;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state, BODY_LIMIT).await?;
        parse_body(&bytes).map(JsonBody)
    }
}

/// Parses a request body strictly into `T` (one JSON document, nothing after it); the 400 reply
/// names the field. Never panics, whatever the bytes.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ErrorReply> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(json_rejection)?;
    de.end().map_err(|e| json_rejection_at(".", &e))?;
    Ok(value)
}

/// A JSON body kept as its bytes (for bundles, whose exact bytes are hashed): 415 unless JSON,
/// 413 above [`IMPORT_LIMIT`].
pub struct RawJson(pub Vec<u8>);

impl<S: Send + Sync> FromRequest<S> for RawJson {
    type Rejection = ErrorReply;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(RawJson(body_bytes(req, state, IMPORT_LIMIT).await?.to_vec()))
    }
}

/// The one path parameter of a route (`{txn}`, `{id}`), percent-decoded: 400 `request.bad_path`
/// when it is not UTF-8.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ErrorReply;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| PathParam(p.0))
            .map_err(|e| ErrorReply::bad_request("request.bad_path", None, "عنوان غير صحيح", e.body_text()))
    }
}

/// A query string parsed strictly into `T`: 400 `request.bad_query` naming the parameter.
pub struct QueryOf<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryOf<T> {
    type Rejection = ErrorReply;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri).map(|q| QueryOf(q.0)).map_err(|rejection| {
            let typed = find_source::<serde_path_to_error::Error<serde_urlencoded::de::Error>>(&rejection);
            let (field, en) = match typed {
                Some(e) => (Some(e.path().to_string()).filter(|p| p != "."), e.inner().to_string()),
                None => (None, rejection.body_text()),
            };
            ErrorReply::bad_request("request.bad_query", field, "معامل غير صحيح في العنوان", en)
        })
    }
}

/// `err` or the first of its sources that is a `T`.
fn find_source<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::desk::{
        InspectionRequest, LoginRequest, ServiceRequest, ShiftCloseRequest, ValidateRequest,
    };
    use proptest::prelude::*;

    fn all_types(bytes: &[u8]) {
        for reply in [
            parse_body::<ServiceRequest>(bytes).err(),
            parse_body::<ValidateRequest>(bytes).err(),
            parse_body::<InspectionRequest>(bytes).err(),
            parse_body::<LoginRequest>(bytes).err(),
            parse_body::<ShiftCloseRequest>(bytes).err(),
        ]
        .into_iter()
        .flatten()
        {
            assert_eq!(reply.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(reply.problems[0].code.starts_with("request."), "{:?}", reply.problems[0]);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            all_types(&bytes);
        }

        #[test]
        fn json_like_text_never_panics(text in r#"[{}\[\]":,`a-z0-9 .\\-]{0,200}"#) {
            all_types(text.as_bytes());
        }
    }

    #[test]
    fn bearer_tokens() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::AUTHORIZATION, v.parse().unwrap());
            bearer(&m).map(|t| t.expose().to_owned())
        };
        assert_eq!(h("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(h("bearer  abc ").as_deref(), Some("abc"));
        assert_eq!(h("Basic abc"), None);
        assert_eq!(h("Bearer"), None);
        assert_eq!(h("Bearer "), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn json_content_types() {
        let j = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::CONTENT_TYPE, v.parse().unwrap());
            is_json(&m)
        };
        assert!(j("application/json"));
        assert!(j("Application/JSON; charset=utf-8"));
        assert!(!j("text/plain"));
        assert!(!j("application/jsonx"));
    }
}
