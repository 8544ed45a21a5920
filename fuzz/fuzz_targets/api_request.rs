#![no_main]
//! The local API's strict body parser must answer a 400 naming the field, never panic, for any
//! bytes and any request type.
use libfuzzer_sys::fuzz_target;
use mtu::api::desk::{
    BookingStateRequest, InspectionRequest, LoginRequest, OverrideRequest, ReprintRequest, ServiceRequest,
    ShiftOpenRequest, ValidateRequest,
};
use mtu::api::extract::parse_body;

fuzz_target!(|data: &[u8]| {
    let _ = parse_body::<ServiceRequest>(data);
    let _ = parse_body::<ValidateRequest>(data);
    let _ = parse_body::<InspectionRequest>(data);
    let _ = parse_body::<LoginRequest>(data);
    let _ = parse_body::<BookingStateRequest>(data);
    let _ = parse_body::<OverrideRequest>(data);
    let _ = parse_body::<ReprintRequest>(data);
    let _ = parse_body::<ShiftOpenRequest>(data);
});
