//! One handler per endpoint: take what the extractors checked, call the desk, send its answer.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, http::HeaderValue};
use serde::Deserialize;

use super::ApiState;
use super::desk::*;
use super::error::ErrorReply;
use super::extract::{Authed, JsonBody, PathParam, QueryOf, RawJson, Supervisor};
use crate::office::model::Date;

/// A handler's result: JSON (or another body) or an error reply.
pub type Reply<T> = Result<T, ErrorReply>;

pub async fn login<D: Desk>(
    State(st): State<ApiState<D>>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Reply<Json<SessionGrant>> {
    Ok(Json(st.desk.login(req).await?))
}

pub async fn session(Authed(who): Authed) -> Reply<Json<Session>> {
    Ok(Json(who))
}

pub async fn logout<D: Desk>(State(st): State<ApiState<D>>, Authed(who): Authed) -> Reply<StatusCode> {
    st.desk.logout(&who).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?date=YYYY-MM-DD`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateQuery {
    #[serde(default)]
    date: Option<Date>,
}

pub async fn bookings<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
    QueryOf(q): QueryOf<DateQuery>,
) -> Reply<Json<Vec<BookingView>>> {
    Ok(Json(st.desk.bookings(&who, q.date).await?))
}

pub async fn booking<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
    PathParam(id): PathParam,
) -> Reply<Json<BookingView>> {
    Ok(Json(st.desk.booking(&who, &id).await?))
}

pub async fn booking_state<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<BookingStateRequest>,
) -> Reply<Json<BookingView>> {
    Ok(Json(st.desk.booking_state(&who, &id, req).await?))
}

pub async fn import<D: Desk>(
    State(st): State<ApiState<D>>,
    Supervisor(who): Supervisor,
    RawJson(bytes): RawJson,
) -> Reply<Json<ImportReport>> {
    Ok(Json(st.desk.import(&who, bytes).await?))
}

pub async fn validate<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
    JsonBody(req): JsonBody<ValidateRequest>,
) -> Reply<Json<Validated>> {
    Ok(Json(st.desk.validate(&who, req).await?))
}

pub async fn schedule<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
) -> Reply<Json<serde_json::Value>> {
    Ok(Json(st.desk.schedule(&who).await?))
}

pub async fn dossier<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
    QueryOf(q): QueryOf<DossierQuery>,
) -> Reply<Json<crate::office::model::Dossier>> {
    Ok(Json(st.desk.dossier(&who, q).await?))
}

pub async fn open_service<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
    JsonBody(req): JsonBody<ServiceRequest>,
) -> Reply<(StatusCode, Json<TxnView>)> {
    Ok((StatusCode::CREATED, Json(st.desk.open_service(&who, req).await?)))
}

/// `?state=open|today`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesQuery {
    #[serde(default)]
    state: ServiceFilter,
}

pub async fn services<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
    QueryOf(q): QueryOf<ServicesQuery>,
) -> Reply<Json<Vec<TxnView>>> {
    Ok(Json(st.desk.services(&who, q.state).await?))
}

pub async fn service<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
    PathParam(txn): PathParam,
) -> Reply<Json<TxnView>> {
    Ok(Json(st.desk.service(&who, &txn).await?))
}

pub async fn inspect<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
    PathParam(txn): PathParam,
    JsonBody(req): JsonBody<InspectionRequest>,
) -> Reply<Json<TxnView>> {
    Ok(Json(st.desk.inspect(&who, &txn, req).await?))
}

pub async fn override_refusal<D: Desk>(
    State(st): State<ApiState<D>>,
    Supervisor(who): Supervisor,
    PathParam(txn): PathParam,
    JsonBody(req): JsonBody<OverrideRequest>,
) -> Reply<Json<TxnView>> {
    Ok(Json(st.desk.override_refusal(&who, &txn, req).await?))
}

pub async fn proceed<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
    PathParam(txn): PathParam,
) -> Reply<(StatusCode, Json<TxnView>)> {
    Ok((StatusCode::ACCEPTED, Json(st.desk.proceed(&who, &txn).await?)))
}

pub async fn cancel<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
    PathParam(txn): PathParam,
    JsonBody(req): JsonBody<ReasonRequest>,
) -> Reply<Json<TxnView>> {
    Ok(Json(st.desk.cancel(&who, &txn, req).await?))
}

pub async fn void<D: Desk>(
    State(st): State<ApiState<D>>,
    Supervisor(who): Supervisor,
    PathParam(txn): PathParam,
    JsonBody(req): JsonBody<ReasonRequest>,
) -> Reply<Json<TxnView>> {
    Ok(Json(st.desk.void(&who, &txn, req).await?))
}

pub async fn reprint<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
    PathParam(txn): PathParam,
    JsonBody(req): JsonBody<ReprintRequest>,
) -> Reply<Json<TxnView>> {
    Ok(Json(st.desk.reprint(&who, &txn, req).await?))
}

/// `?format=a4|roll80`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptQuery {
    #[serde(default)]
    format: ReceiptFormat,
}

/// A PDF response, shown inline, named `name`.
fn pdf(bytes: Vec<u8>, name: &str) -> Response {
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
    // Names come from ids the desk issued; anything outside a safe set is replaced.
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{safe}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

pub async fn receipt_pdf<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
    PathParam(txn): PathParam,
    QueryOf(q): QueryOf<ReceiptQuery>,
) -> Reply<Response> {
    let bytes = st.desk.receipt_pdf(&who, &txn, q.format).await?;
    Ok(pdf(bytes, &format!("receipt-{txn}.pdf")))
}

pub async fn records<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
    PathParam(txn): PathParam,
) -> Reply<Json<Vec<serde_json::Value>>> {
    Ok(Json(st.desk.records(&who, &txn).await?))
}

pub async fn shift<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
) -> Reply<Json<Option<ShiftView>>> {
    Ok(Json(st.desk.shift(&who).await?))
}

pub async fn open_shift<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
    JsonBody(req): JsonBody<ShiftOpenRequest>,
) -> Reply<(StatusCode, Json<ShiftView>)> {
    Ok((StatusCode::CREATED, Json(st.desk.open_shift(&who, req).await?)))
}

pub async fn close_shift<D: Desk>(
    State(st): State<ApiState<D>>,
    Supervisor(who): Supervisor,
    JsonBody(req): JsonBody<ShiftCloseRequest>,
) -> Reply<Json<ShiftReportView>> {
    Ok(Json(st.desk.close_shift(&who, req).await?))
}

pub async fn shift_report<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
    PathParam(id): PathParam,
) -> Reply<Response> {
    let bytes = st.desk.shift_report_pdf(&who, &id).await?;
    Ok(pdf(bytes, &format!("shift-{id}.pdf")))
}

pub async fn van<D: Desk>(State(st): State<ApiState<D>>) -> Json<serde_json::Value> {
    Json(st.desk.van())
}

pub async fn sync<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
) -> Reply<Json<serde_json::Value>> {
    Ok(Json(st.desk.sync(&who).await?))
}

pub async fn devices<D: Desk>(
    State(st): State<ApiState<D>>,
    Authed(who): Authed,
) -> Reply<Json<std::collections::BTreeMap<String, DeviceView>>> {
    Ok(Json(st.desk.devices(&who).await?))
}

pub async fn alarms<D: Desk>(State(st): State<ApiState<D>>, Authed(who): Authed) -> Reply<Json<AlarmView>> {
    Ok(Json(st.desk.alarms(&who).await?))
}

pub async fn clear_tamper<D: Desk>(
    State(st): State<ApiState<D>>,
    Supervisor(who): Supervisor,
    JsonBody(req): JsonBody<ReasonRequest>,
) -> Reply<Json<AlarmView>> {
    Ok(Json(st.desk.clear_tamper(&who, req).await?))
}
