//! Technician test jobs (`vanctl devices test card|sticker|rfid|payment`): one real job per
//! device that proves it works end to end, journaled like any job.
//!
//! - card: a test card, both sides: the ministry header, a grey ramp (colour ribbons) and a line
//!   wedge, the van id and the time; a QR code on the back;
//! - sticker: a test label (Latin text, a box, a QR code) and, on an RFID model, a tag write with
//!   read-back;
//! - rfid: a test tag encoded with the configured tag profile (EPC `7E57…`: "TEST"), read back
//!   and locked — it uses a real sticker, which afterwards is a marked test tag;
//! - payment: the terminal's status and diagnosis; never a charge.
//!
//! This module composes `render` and `devices`, which know nothing of each other.

use std::time::Duration;

use crate::devices::card::{CardJob, CardSide, ColourPlanes, Plane8};
use crate::devices::manager::{Driver, JobError, JobHandle, Manager, Outcome};
use crate::devices::rfid::TagData;
use crate::devices::sticker::{LabelElement, QrLevel, StickerLabel, TagLock, TagWrite};
use crate::devices::{DeviceError, DeviceId};
use crate::render::RenderError;
use crate::render::raster::{CARD_HEIGHT_MM, CARD_WIDTH_MM, card_panels};
use crate::render::scene::{Ink, Rgb, Scene};
use crate::render::text::{Align, TextStyle};

/// What a test job did, for the technician (and `--json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestReport {
    /// The device.
    pub device: DeviceId,
    /// The job (as in its `device.job` record).
    pub job: String,
    /// `done`, `failed`, `unknown`, `cancelled`.
    pub outcome: String,
    /// Whether the device passed.
    pub ok: bool,
    /// What was done and seen, one line each.
    pub lines: Vec<String>,
}

/// The identity printed on test output.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// The van id.
    pub van_id: String,
    /// UTC time, microseconds.
    pub time_us: i64,
}

impl Stamp {
    fn text(&self) -> String {
        format!("{}  {}", self.van_id, crate::clock::format_utc_us(self.time_us))
    }
}

/// The test card: front with header, ramps and stamp; back with stamp and QR code.
pub fn test_card(stamp: &Stamp, colour: bool) -> Result<CardJob, RenderError> {
    let (w, h) = (CARD_WIDTH_MM, CARD_HEIGHT_MM);
    let mut front = Scene::new(w, h);
    front.text(
        "header",
        "جمهورية مصر العربية — وزارة الداخلية",
        (4.0, 3.0, w - 8.0, 7.0),
        TextStyle::ar(10.0),
    )?;
    front.text(
        "header",
        "الإدارة العامة للمرور — كارت اختبار",
        (4.0, 10.0, w - 8.0, 6.0),
        TextStyle::ar(8.0),
    )?;
    front.text(
        "title",
        "TEST CARD — NOT A LICENCE",
        (4.0, 17.0, w - 8.0, 5.0),
        TextStyle::latin(7.0).lines(1).align(Align::Center),
    )?;
    // A grey ramp in eleven steps on the colour panels (0 … 100 % ink), and a line wedge on K
    // (bars 1 … 8 dots wide) that shows the resin panel's resolution.
    let steps = 11u8;
    let step_w = (w - 8.0) / f32::from(steps);
    for i in 0..steps {
        let grey = 255 - (u16::from(i) * 255 / u16::from(steps - 1)) as u8;
        if colour {
            front.rect((4.0 + f32::from(i) * step_w, 24.0, step_w, 8.0), Rgb(grey, grey, grey), Ink::Colour);
        }
    }
    let dot = 25.4 / 300.0;
    let mut x = 4.0;
    for n in 1..=8u8 {
        for _ in 0..4 {
            front.rect((x, 34.0, f32::from(n) * dot, 6.0), Rgb::BLACK, Ink::K);
            x += 2.0 * f32::from(n) * dot;
        }
        x += 1.5;
    }
    front.text("stamp", &stamp.text(), (4.0, 44.0, w - 8.0, 5.0), TextStyle::latin(7.0).lines(1))?;
    let mut back = Scene::new(w, h);
    back.text("back", "كارت اختبار — ليس رخصة", (4.0, 4.0, w - 8.0, 7.0), TextStyle::ar(10.0))?;
    back.text("stamp", &stamp.text(), (4.0, 12.0, w - 34.0, 5.0), TextStyle::latin(7.0).lines(1))?;
    back.qr(&format!("MTU-TEST|{}|{}", stamp.van_id, stamp.time_us), w - 28.0, h - 28.0, 24.0)?;
    Ok(CardJob { front: side(&front, colour)?, back: Some(side(&back, false)?) })
}

fn side(scene: &Scene, colour: bool) -> Result<CardSide, RenderError> {
    let p = card_panels(scene)?;
    let plane = |q: crate::render::raster::Plane8| Plane8 { width: q.width, height: q.height, data: q.data };
    Ok(CardSide {
        k: Some(p.k),
        ymc: colour.then(|| ColourPlanes { y: plane(p.y), m: plane(p.m), c: plane(p.c) }),
        overlay: false,
    })
}

/// The test label (Latin text: ZPL's own font; a box; a QR code).
pub fn test_label(stamp: &Stamp, dpi: u32) -> StickerLabel {
    let mut l = StickerLabel::new_mm(dpi, 60.0, 40.0);
    let d = |mm: f64| crate::devices::sticker::mm_to_dots(mm, dpi);
    l.elements.push(LabelElement::Box {
        x: d(1.0),
        y: d(1.0),
        width: d(58.0),
        height: d(38.0),
        thickness: 3,
    });
    l.elements.push(LabelElement::Text {
        x: d(4.0),
        y: d(4.0),
        height: d(4.0),
        text: "MTU TEST LABEL".into(),
    });
    l.elements.push(LabelElement::Text { x: d(4.0), y: d(10.0), height: d(3.0), text: stamp.van_id.clone() });
    let time = crate::clock::format_utc_us(stamp.time_us);
    l.elements.push(LabelElement::Text { x: d(4.0), y: d(15.0), height: d(2.5), text: time });
    l.elements.push(LabelElement::Qr {
        x: d(38.0),
        y: d(16.0),
        data: format!("MTU-TEST|{}|{}", stamp.van_id, stamp.time_us),
        magnification: 3,
        level: QrLevel::M,
    });
    l
}

/// The EPC of a test tag: `7E57` ("TEST") then the low bytes of the time, `len` bytes.
pub fn test_epc(stamp: &Stamp, len: usize) -> Vec<u8> {
    let mut epc = vec![0x7E, 0x57];
    epc.extend_from_slice(&stamp.time_us.to_be_bytes());
    epc.resize(len.max(2), 0);
    epc
}

/// Runs the test job of `device` and reports. The job goes on (and is journaled) if `timeout`
/// passes first.
pub async fn run(
    manager: &Manager,
    device: DeviceId,
    stamp: &Stamp,
    timeout: Duration,
) -> Result<TestReport, JobError> {
    let Some(handle) = manager.device(device) else {
        return Err(JobError::Absent { device: device.name().into() });
    };
    let s = stamp.clone();
    match device {
        DeviceId::Card => {
            let job = handle.submit("test card", move |d, _ctx| match d {
                Driver::Card(p) => {
                    let mut lines = Vec::new();
                    let colour = test_card(&s, true).map_err(render_error)?;
                    let receipt = match p.print(&colour) {
                        // A K-only ribbon refuses colour before anything is sent: print black only.
                        Err(DeviceError::Unsupported { what, .. }) => {
                            lines.push(format!("colour refused ({what}): printing the black test card"));
                            p.print(&test_card(&s, false).map_err(render_error)?)?
                        }
                        other => other?,
                    };
                    lines.push(format!(
                        "printed a test card: panels {}, {} bytes, {} exchanges",
                        receipt.panels.join(" "),
                        receipt.bytes_sent,
                        receipt.round_trips
                    ));
                    Ok(lines)
                }
                _ => Err(wrong_kind(DeviceId::Card)),
            });
            finish(device, job, timeout).await
        }
        DeviceId::Sticker => {
            let job = handle.submit("test label", move |d, _ctx| match d {
                Driver::Sticker(p) => {
                    let label = test_label(&s, 203);
                    let mut lines = Vec::new();
                    let tag = TagWrite {
                        epc: test_epc(&s, 12),
                        user: Vec::new(),
                        access_password: None,
                        kill_password: None,
                        lock: TagLock::Unchanged,
                    };
                    match p.print_rfid_label(&label, &tag) {
                        Ok(tid) => lines.push(format!(
                            "printed a test label with an RFID write; read back TID {tid:?}, EPC {}",
                            hex::encode_upper(&tag.epc)
                        )),
                        Err(DeviceError::Unsupported { .. }) => {
                            p.print_label(&label)?;
                            lines.push("printed a test label (not an RFID model: no tag written)".into());
                        }
                        Err(e) => return Err(e),
                    }
                    Ok(lines)
                }
                _ => Err(wrong_kind(DeviceId::Sticker)),
            });
            finish(device, job, timeout).await
        }
        DeviceId::Rfid => {
            let job = handle.submit("test tag", move |d, _ctx| match d {
                Driver::Rfid(e) => {
                    let mut lines = Vec::new();
                    let mut len = 12;
                    let encoded = loop {
                        match e.encode(&TagData { epc: test_epc(&s, len), user: Vec::new() }) {
                            // The profile's EPC length differs: said before anything is written.
                            Err(DeviceError::Fault {
                                fault: crate::devices::Fault::Rfid(crate::devices::RfidFault::BadRequest),
                                detail,
                                ..
                            }) if len == 12 => {
                                len = detail
                                    .split("wants ")
                                    .nth(1)
                                    .and_then(|t| t.split_whitespace().next())
                                    .and_then(|n| n.parse().ok())
                                    .unwrap_or(12);
                                if len == 12 {
                                    return Err(DeviceError::fault(
                                        "rfid",
                                        crate::devices::Fault::Rfid(crate::devices::RfidFault::BadRequest),
                                        detail,
                                    ));
                                }
                            }
                            other => break other?,
                        }
                    };
                    lines.push(format!(
                        "encoded a test tag: TID {}, EPC {} (read back and locked)",
                        hex::encode_upper(&encoded.tid),
                        hex::encode_upper(&encoded.epc)
                    ));
                    Ok(lines)
                }
                _ => Err(wrong_kind(DeviceId::Rfid)),
            });
            finish(device, job, timeout).await
        }
        DeviceId::Payment => {
            let job = handle.submit("terminal diagnosis", move |d, _ctx| match d {
                Driver::Payment(t) => {
                    let st = t.status()?;
                    let mut lines = vec![format!(
                        "status: software {}, code {}, {}",
                        st.software,
                        st.status_code,
                        if st.ready { "ready" } else { "NOT ready" }
                    )];
                    let report = t.self_test()?;
                    lines.extend(report.lines);
                    if !st.ready || !report.ok {
                        return Err(DeviceError::fault(
                            "payment",
                            crate::devices::Fault::Payment(crate::devices::PaymentFault::NotReady),
                            lines.join("; "),
                        ));
                    }
                    lines.push("nothing was charged".into());
                    Ok(lines)
                }
                _ => Err(wrong_kind(DeviceId::Payment)),
            });
            finish(device, job, timeout).await
        }
        DeviceId::Gpio => Err(JobError::Device(DeviceError::Unsupported {
            device: "gpio".into(),
            what: "GPIO has no test job; see `vanctl devices self-test`".into(),
        })),
    }
}

fn render_error(e: RenderError) -> DeviceError {
    DeviceError::Unsupported { device: "render".into(), what: format!("test document: {e}") }
}

fn wrong_kind(id: DeviceId) -> DeviceError {
    DeviceError::Unsupported { device: id.name().into(), what: format!("not a {} driver", id.name()) }
}

impl crate::devices::manager::JobData for Vec<String> {}

async fn finish(
    device: DeviceId,
    mut job: JobHandle<Vec<String>>,
    timeout: Duration,
) -> Result<TestReport, JobError> {
    let id = job.id().to_string();
    let outcome = job.wait(timeout).await?;
    let name = outcome.name().to_owned();
    Ok(match outcome {
        Outcome::Done(lines) => TestReport { device, job: id, outcome: name, ok: true, lines },
        Outcome::Failed(e) | Outcome::Unknown(e) => {
            let mut lines = vec![e.to_string()];
            if let Some(f) = e.fault() {
                lines.push(format!("fault {}: {}", f.code(), f.action(crate::devices::Lang::En)));
            }
            TestReport { device, job: id, outcome: name, ok: false, lines }
        }
        Outcome::Cancelled => {
            TestReport { device, job: id, outcome: name, ok: false, lines: vec!["cancelled".into()] }
        }
    })
}
