//! The device registry: builds each configured device's driver from its configuration.
//!
//! This is the one place that knows which protocols exist for which kind. The kind modules
//! (`card`, `payment`, …) define traits and plain data and import no driver; drivers import
//! their kind module; the registry imports both. So there are no import cycles, and a second
//! protocol for a kind is one more arm here.

use super::card::CardPrinter;
use super::payment::PaymentTerminal;
use super::rfid::TagEncoder;
use super::sticker::StickerPrinter;
use super::{DeviceError, DeviceId, Link, SelfTestReport};
use crate::config::DeviceConfig;

/// A device without one of the four kind traits (test doubles, future auxiliary devices).
pub trait GenericDevice: Send {
    /// Safe checks only.
    fn self_test(&mut self) -> Result<SelfTestReport, DeviceError>;
}

/// A built driver, by kind. Jobs receive `&mut Driver` and match on their kind.
pub enum Driver {
    /// The payment terminal (ZVT).
    Payment(Box<dyn PaymentTerminal>),
    /// The card printer (Evolis).
    Card(Box<dyn CardPrinter>),
    /// The sticker printer (ZPL).
    Sticker(Box<dyn StickerPrinter>),
    /// The e-sticker encoder (Mercury).
    Rfid(Box<dyn TagEncoder>),
    /// Anything else (see [`GenericDevice`]).
    Generic(Box<dyn GenericDevice>),
}

impl Driver {
    /// Runs the driver's safe self-test.
    pub fn self_test(&mut self) -> Result<SelfTestReport, DeviceError> {
        match self {
            Driver::Payment(d) => d.self_test(),
            Driver::Card(d) => d.self_test(),
            Driver::Sticker(d) => d.self_test(),
            Driver::Rfid(d) => d.self_test(),
            Driver::Generic(d) => d.self_test(),
        }
    }
}

fn unknown_driver(id: DeviceId, driver: &str, known: &str) -> DeviceError {
    DeviceError::Config {
        device: id.name().into(),
        key: format!("devices.{}.driver", id.name()),
        message: format!("unknown {} driver {driver:?} (known: {known})", id.label(super::Lang::En)),
    }
}

/// Builds the configured payment terminal driver over an open link.
pub fn payment(cfg: &DeviceConfig, link: Box<dyn Link>) -> Result<Box<dyn PaymentTerminal>, DeviceError> {
    match cfg.driver.as_str() {
        "zvt" => Ok(Box::new(super::zvt::ZvtTerminal::from_config(cfg, link)?)),
        other => Err(unknown_driver(DeviceId::Payment, other, "zvt")),
    }
}

/// Builds the configured card printer driver over an open link.
pub fn card(cfg: &DeviceConfig, link: Box<dyn Link>) -> Result<Box<dyn CardPrinter>, DeviceError> {
    match cfg.driver.as_str() {
        "evolis" => Ok(Box::new(super::evolis::EvolisPrinter::from_config(cfg, link)?)),
        other => Err(unknown_driver(DeviceId::Card, other, "evolis")),
    }
}

/// Builds the configured sticker printer driver over an open link.
///
/// Driver `zpl`; options: `dpi` (203 or 300, default 203), `rfid` (bool, default false).
pub fn sticker(cfg: &DeviceConfig, link: Box<dyn Link>) -> Result<Box<dyn StickerPrinter>, DeviceError> {
    match cfg.driver.as_str() {
        "zpl" => {
            let options = super::zpl::ZplOptions::from_table(&cfg.options, cfg.serial.timeout_ms)?;
            Ok(Box::new(super::zpl::ZplPrinter::new(link, options)))
        }
        other => Err(unknown_driver(DeviceId::Sticker, other, "zpl")),
    }
}

/// Builds the configured e-sticker encoder driver over an open link.
pub fn rfid(cfg: &DeviceConfig, link: Box<dyn Link>) -> Result<Box<dyn TagEncoder>, DeviceError> {
    match cfg.driver.as_str() {
        "mercury" => Ok(Box::new(super::mercury::MercuryEncoder::from_config(cfg, link)?)),
        other => Err(unknown_driver(DeviceId::Rfid, other, "mercury")),
    }
}

/// Builds the driver of a serial device.
pub fn build(id: DeviceId, cfg: &DeviceConfig, link: Box<dyn Link>) -> Result<Driver, DeviceError> {
    Ok(match id {
        DeviceId::Payment => Driver::Payment(payment(cfg, link)?),
        DeviceId::Card => Driver::Card(card(cfg, link)?),
        DeviceId::Sticker => Driver::Sticker(sticker(cfg, link)?),
        DeviceId::Rfid => Driver::Rfid(rfid(cfg, link)?),
        DeviceId::Gpio => {
            return Err(DeviceError::Unsupported {
                device: "gpio".into(),
                what: "GPIO is not a serial device".into(),
            });
        }
    })
}
