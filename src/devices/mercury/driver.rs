//! The Mercury tag encoder driver: runs the Gen2 encoding sequence over a [`Link`] with the pure
//! codec. Synchronous; it lives on the thread that owns the port.

use std::time::{Duration, Instant};

use super::codec::{
    Bank, Command, PROTOCOL_GEN2, Password, Region, Response, ResponseDecoder, Select, Status, VersionInfo,
    opcode, parse_read_data, parse_tag_count,
};
use super::profile::{TagPasswords, TagProfile, TagSecret};
use crate::devices::rfid::{EncodedTag, TagData, TagEncoder};
use crate::devices::{DeviceError, Fault, Link, LinkError, RfidFault, SelfTestReport};

/// Words per Write Tag Data command (kept small: tags write word by word on the air).
const WRITE_CHUNK_WORDS: usize = 16;
/// Words per Read Tag Data command.
const READ_CHUNK_WORDS: usize = 32;

/// Why an encoder operation failed, with the cause a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum MercuryError {
    /// Nothing answered the inventory (or the tag left the field).
    #[error("no tag in the field")]
    NoTag,
    /// More than one tag answered the inventory.
    #[error("{count} tags in the field, exactly one is needed")]
    MultipleTags { count: u32 },
    /// A write was refused.
    #[error("writing the {what} failed: module status {status}")]
    WriteFailed { what: &'static str, status: Status },
    /// The read-back differs from what was written.
    #[error("read-back of the {what} does not match what was written")]
    VerifyFailed { what: &'static str },
    /// The Gen2 Lock was refused.
    #[error("locking the tag failed: module status {status}")]
    LockFailed { status: Status },
    /// The tag is locked with an access password we do not have.
    #[error("the tag is locked with a different access password")]
    WrongPassword,
    /// The tag accepts our password but a bank to write is permanently locked.
    #[error("the tag is permanently locked (already encoded)")]
    PermanentlyLocked,
    /// The module refuses the configured region or its radio is off.
    #[error("region {configured}: module status {status}")]
    WrongRegion { configured: String, status: Status },
    /// Any other refusal by the module.
    #[error("{what}: module status {status}")]
    Module { what: &'static str, status: Status },
    /// The data to encode does not fit the tag profile.
    #[error("tag data does not fit the profile: {0}")]
    BadRequest(String),
    /// The module spoke, but not sensibly.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The serial link failed.
    #[error(transparent)]
    Link(#[from] LinkError),
}

impl MercuryError {
    /// The typed fault.
    fn fault(&self) -> Option<RfidFault> {
        Some(match self {
            MercuryError::NoTag => RfidFault::NoTag,
            MercuryError::MultipleTags { .. } => RfidFault::MultipleTags,
            MercuryError::WriteFailed { .. } => RfidFault::WriteFailed,
            MercuryError::VerifyFailed { .. } => RfidFault::VerifyFailed,
            MercuryError::LockFailed { .. } => RfidFault::LockFailed,
            MercuryError::WrongPassword => RfidFault::WrongPassword,
            MercuryError::PermanentlyLocked => RfidFault::PermanentlyLocked,
            MercuryError::WrongRegion { .. } => RfidFault::WrongRegion,
            MercuryError::Module { .. } => RfidFault::ModuleError,
            MercuryError::BadRequest(_) => RfidFault::BadRequest,
            MercuryError::Protocol(_) | MercuryError::Link(_) => return None,
        })
    }

    /// Whether the tag may have been written when this error ended an encode: only refusals
    /// that come before the first write (no tag, several tags, bad request, foreign password,
    /// region) are certain to have written nothing; anything else is treated as "may have".
    fn before_any_write(&self) -> bool {
        matches!(
            self,
            MercuryError::NoTag
                | MercuryError::MultipleTags { .. }
                | MercuryError::BadRequest(_)
                | MercuryError::WrongPassword
                | MercuryError::WrongRegion { .. }
        )
    }

    /// The shared device error, naming the device and the action to take.
    pub fn into_device_error(self, path: &str) -> DeviceError {
        let device = format!("e-sticker encoder on {path}");
        match self.fault() {
            Some(f) => DeviceError::fault(device, Fault::Rfid(f), self.to_string()),
            None => match self {
                MercuryError::Link(e) => DeviceError::Link(e),
                other => DeviceError::Protocol { device, detail: other.to_string() },
            },
        }
    }

    /// As [`MercuryError::into_device_error`] for an operation that writes tags.
    pub fn into_write_error(self, path: &str) -> DeviceError {
        let before = self.before_any_write();
        let e = self.into_device_error(path);
        if before { e } else { e.after_acting() }
    }
}

/// Traffic counters (for the wire benchmark and diagnostics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireStats {
    /// Bytes written to the module.
    pub bytes_out: u64,
    /// Bytes read from the module.
    pub bytes_in: u64,
    /// Command/response exchanges.
    pub round_trips: u64,
}

/// ThingMagic Mercury encoder over one link.
pub struct MercuryEncoder {
    link: Box<dyn Link>,
    profile: TagProfile,
    secret: TagSecret,
    decoder: ResponseDecoder,
    answer_timeout: Duration,
    version: Option<VersionInfo>,
    ready: bool,
    dirty: bool,
    stats: WireStats,
}

impl MercuryEncoder {
    /// A driver with an explicit profile and secret; `answer_timeout` is added to each command's own
    /// tag timeout to wait for its response.
    pub fn new(
        link: Box<dyn Link>,
        profile: TagProfile,
        secret: TagSecret,
        answer_timeout: Duration,
    ) -> Self {
        MercuryEncoder {
            link,
            profile,
            secret,
            decoder: ResponseDecoder::new(),
            answer_timeout,
            version: None,
            ready: false,
            dirty: false,
            stats: WireStats::default(),
        }
    }

    /// Builds the driver from `[devices.rfid]`: options give the tag profile, `password_file` the
    /// tag secret.
    pub fn from_config(cfg: &crate::config::DeviceConfig, link: Box<dyn Link>) -> Result<Self, DeviceError> {
        let profile = TagProfile::from_options(&cfg.options)?;
        let secret = TagSecret::load(&profile.password_file)?;
        Ok(MercuryEncoder::new(link, profile, secret, Duration::from_millis(cfg.serial.timeout_ms)))
    }

    /// Traffic so far.
    pub fn wire_stats(&self) -> WireStats {
        self.stats
    }

    /// The module's versions, once read.
    pub fn version(&self) -> Option<&VersionInfo> {
        self.version.as_ref()
    }

    fn command_timeout(cmd: &Command) -> Duration {
        let ms = match cmd {
            Command::ReadTagMultiple { timeout_ms }
            | Command::ReadTagData { timeout_ms, .. }
            | Command::WriteTagData { timeout_ms, .. }
            | Command::WriteEpc { timeout_ms, .. }
            | Command::Lock { timeout_ms, .. }
            | Command::Kill { timeout_ms, .. } => *timeout_ms,
            // The application needs a moment to start after Boot Firmware.
            Command::BootFirmware => 1000,
            _ => 0,
        };
        Duration::from_millis(u64::from(ms))
    }

    /// Sends one command and waits for the response with the same opcode. When only noise or
    /// corrupted frames came back, the command is sent once more: every command this driver sends
    /// has the same effect when repeated, except Kill (a second Kill finds no tag), which is not
    /// repeated.
    fn exchange(&mut self, cmd: &Command) -> Result<Response, MercuryError> {
        match self.exchange_once(cmd) {
            Err(MercuryError::Protocol(detail)) if !matches!(cmd, Command::Kill { .. }) => {
                tracing::warn!("rfid: {detail}; sending the command again");
                self.exchange_once(cmd)
            }
            other => other,
        }
    }

    fn exchange_once(&mut self, cmd: &Command) -> Result<Response, MercuryError> {
        let frame = cmd.encode().map_err(|e| MercuryError::BadRequest(e.to_string()))?;
        if self.dirty {
            self.link.discard_input()?;
            self.decoder.clear();
            self.dirty = false;
        }
        self.link.write_all(&frame)?;
        self.stats.bytes_out += frame.len() as u64;
        self.stats.round_trips += 1;
        let noise_before = self.decoder.stats();
        let deadline = Instant::now() + self.answer_timeout + Self::command_timeout(cmd);
        let mut buf = [0u8; 512];
        loop {
            while let Some(resp) = self.decoder.next_frame() {
                if resp.opcode == cmd.opcode() {
                    return Ok(resp);
                }
                if resp.opcode == opcode::BOOT_FIRMWARE {
                    self.ready = false;
                    self.dirty = true;
                    return Err(MercuryError::Protocol(
                        "the module restarted during the command (boot message received)".into(),
                    ));
                }
                tracing::debug!(
                    "rfid: ignoring a response to 0x{:02X} while waiting for 0x{:02X}",
                    resp.opcode,
                    cmd.opcode()
                );
            }
            match self.link.read_some(&mut buf, deadline) {
                Ok(n) => {
                    self.stats.bytes_in += n as u64;
                    self.decoder.push(&buf[..n]);
                }
                Err(LinkError::Timeout { device, path, waited_ms }) => {
                    self.dirty = true;
                    let s = self.decoder.stats();
                    let noise = s.discarded - noise_before.discarded + self.decoder.pending() as u64;
                    let bad_crc = s.bad_crc - noise_before.bad_crc;
                    if noise > 0 || bad_crc > 0 {
                        return Err(MercuryError::Protocol(format!(
                            "no valid answer to 0x{:02X}: {noise} bytes of noise, {bad_crc} frames with a bad CRC",
                            cmd.opcode(),
                        )));
                    }
                    // The module may have restarted into its bootloader: start it again next time.
                    self.ready = false;
                    return Err(MercuryError::Link(LinkError::Timeout { device, path, waited_ms }));
                }
                Err(e) => {
                    self.dirty = true;
                    self.ready = false;
                    return Err(e.into());
                }
            }
        }
    }

    /// Sends a command that must succeed.
    fn expect_ok(&mut self, cmd: &Command, what: &'static str) -> Result<Response, MercuryError> {
        let resp = self.exchange(cmd)?;
        if resp.status.is_ok() { Ok(resp) } else { Err(MercuryError::Module { what, status: resp.status }) }
    }

    /// Starts the application firmware, reads versions and configures region, Gen2 and power.
    pub fn start(&mut self) -> Result<(), MercuryError> {
        let boot = self.exchange(&Command::BootFirmware)?;
        match boot.status {
            Status::OK => tracing::info!("rfid: application firmware started from the bootloader"),
            // The application does not know the bootloader's opcode: it already runs.
            Status::INVALID_OPCODE => tracing::debug!("rfid: application firmware already running"),
            status => return Err(MercuryError::Module { what: "boot firmware", status }),
        }
        let resp = self.expect_ok(&Command::GetVersion, "get version")?;
        let version = VersionInfo::parse(&resp.data).map_err(|e| MercuryError::Protocol(e.to_string()))?;
        tracing::info!(
            "rfid: {} firmware {} bootloader {}",
            version.model(),
            version.firmware_string(),
            version.bootloader_string()
        );
        self.version = Some(version);
        let region = self.profile.region;
        let resp = self.exchange(&Command::SetRegion(region))?;
        if !resp.status.is_ok() {
            return Err(MercuryError::WrongRegion { configured: region.name(), status: resp.status });
        }
        self.expect_ok(&Command::SetProtocol(PROTOCOL_GEN2), "set protocol Gen2")?;
        self.expect_ok(&Command::SetReadPower(self.profile.read_power_cdbm), "set read power")?;
        self.expect_ok(&Command::SetWritePower(self.profile.write_power_cdbm), "set write power")?;
        self.ready = true;
        Ok(())
    }

    /// Maps the status of a tag operation: no tag, wrong password, wrong region, or `other`.
    fn tag_status(
        &self,
        status: Status,
        other: impl FnOnce(Status) -> MercuryError,
    ) -> Result<(), MercuryError> {
        match status {
            Status::OK => Ok(()),
            Status::NO_TAGS_FOUND => Err(MercuryError::NoTag),
            Status::GEN2_MEMORY_LOCKED => Err(MercuryError::WrongPassword),
            Status::AFE_NOT_ON | Status::INVALID_REGION => {
                Err(MercuryError::WrongRegion { configured: self.profile.region.name(), status })
            }
            s => Err(other(s)),
        }
    }

    /// Counts tags in the field and returns the TID of the only one.
    fn single_tag_tid(&mut self) -> Result<Vec<u8>, MercuryError> {
        let resp = self.exchange(&Command::ReadTagMultiple { timeout_ms: self.profile.inventory_ms })?;
        self.tag_status(resp.status, |status| MercuryError::Module { what: "inventory", status })?;
        let count = parse_tag_count(&resp.data).map_err(|e| MercuryError::Protocol(e.to_string()))?;
        self.expect_ok(&Command::ClearTagBuffer, "clear tag buffer")?;
        match count {
            0 => return Err(MercuryError::NoTag),
            1 => {}
            n => return Err(MercuryError::MultipleTags { count: n }),
        }
        let tid =
            self.read_words(Bank::Tid, 0, self.profile.tid_words.into(), Password::ZERO, None, "TID")?;
        Ok(tid)
    }

    fn read_words(
        &mut self,
        bank: Bank,
        from: usize,
        words: usize,
        password: Password,
        select: Option<&Select>,
        what: &'static str,
    ) -> Result<Vec<u8>, MercuryError> {
        let mut out = Vec::with_capacity(words * 2);
        let mut at = from;
        while at < from + words {
            let n = (from + words - at).min(READ_CHUNK_WORDS);
            let resp = self.exchange(&Command::ReadTagData {
                timeout_ms: self.profile.tag_op_timeout_ms,
                bank,
                word_address: at as u32,
                word_count: n as u8,
                password,
                select: select.cloned(),
            })?;
            self.tag_status(resp.status, |status| MercuryError::Module { what, status })?;
            let data = parse_read_data(&resp.data).map_err(|e| MercuryError::Protocol(e.to_string()))?;
            if data.len() != n * 2 {
                return Err(MercuryError::Protocol(format!(
                    "asked {n} words of the {what}, got {} bytes",
                    data.len()
                )));
            }
            out.extend_from_slice(&data);
            at += n;
        }
        Ok(out)
    }

    fn write_words(
        &mut self,
        bank: Bank,
        from: usize,
        data: &[u8],
        password: Password,
        select: &Select,
        what: &'static str,
    ) -> Result<(), MercuryError> {
        for (i, chunk) in data.chunks(WRITE_CHUNK_WORDS * 2).enumerate() {
            let resp = self.exchange(&Command::WriteTagData {
                timeout_ms: self.profile.tag_op_timeout_ms,
                bank,
                word_address: (from + i * WRITE_CHUNK_WORDS) as u32,
                data: chunk.to_vec(),
                password,
                select: Some(select.clone()),
            })?;
            self.tag_status(resp.status, |status| MercuryError::WriteFailed { what, status })?;
        }
        Ok(())
    }

    /// Writes the passwords; a tag already carrying our derived password (an earlier, interrupted
    /// encoding) is accepted with it. Returns the access password now valid on the tag.
    fn write_passwords(&mut self, pw: &TagPasswords, select: &Select) -> Result<Password, MercuryError> {
        let reserved = pw.reserved_bank();
        match self.write_words(Bank::Reserved, 0, &reserved, Password::ZERO, select, "passwords") {
            Ok(()) => Ok(pw.access),
            Err(MercuryError::WrongPassword) => {
                match self.write_words(Bank::Reserved, 0, &reserved, pw.access, select, "passwords") {
                    Ok(()) => Ok(pw.access),
                    // Permalocked passwords cannot be rewritten: fine if they already are ours.
                    Err(MercuryError::WrongPassword) => {
                        let back = zeroize::Zeroizing::new(self.read_words(
                            Bank::Reserved,
                            0,
                            4,
                            pw.access,
                            Some(select),
                            "passwords",
                        )?);
                        if back[..] == reserved[..] {
                            Ok(pw.access)
                        } else {
                            Err(MercuryError::WrongPassword)
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The Gen2 sequence: one tag → passwords → EPC → user memory → read back → lock → TID.
    pub fn encode_tag(&mut self, data: &TagData) -> Result<EncodedTag, MercuryError> {
        if data.epc.len() != self.profile.epc_bytes {
            return Err(MercuryError::BadRequest(format!(
                "EPC has {} bytes, the profile wants {}",
                data.epc.len(),
                self.profile.epc_bytes
            )));
        }
        if data.user.len() > self.profile.user_words * 2 {
            return Err(MercuryError::BadRequest(format!(
                "user data has {} bytes, the profile allows {}",
                data.user.len(),
                self.profile.user_words * 2
            )));
        }
        let mut user = data.user.clone();
        if user.len() % 2 == 1 {
            user.push(0);
        }
        if !self.ready {
            self.start()?;
        }
        let tid = self.single_tag_tid()?;
        let select = Select::tid(&tid);
        let passwords = self.secret.passwords_for(&tid);
        let access = self.write_passwords(&passwords, &select)?;
        // From here the tag accepts our password: "memory locked" means permanently locked.
        self.write_verify_lock(data, &user, &passwords, access, select).map_err(|e| match e {
            MercuryError::WrongPassword => MercuryError::PermanentlyLocked,
            other => other,
        })?;
        tracing::info!("rfid: encoded and locked tag TID {}", hex::encode_upper(&tid));
        Ok(EncodedTag { tid, epc: data.epc.clone() })
    }

    fn write_verify_lock(
        &mut self,
        data: &TagData,
        user: &[u8],
        passwords: &TagPasswords,
        access: Password,
        select: Select,
    ) -> Result<(), MercuryError> {
        let resp = self.exchange(&Command::WriteEpc {
            timeout_ms: self.profile.tag_op_timeout_ms,
            epc: data.epc.clone(),
            password: access,
            select: Some(select.clone()),
        })?;
        self.tag_status(resp.status, |status| MercuryError::WriteFailed { what: "EPC", status })?;
        if !user.is_empty() {
            self.write_words(Bank::User, 0, user, access, &select, "user memory")?;
        }

        // Read back everything written.
        let epc_words = data.epc.len() / 2;
        let pc_epc = self.read_words(Bank::Epc, 1, 1 + epc_words, access, Some(&select), "EPC")?;
        let pc = u16::from_be_bytes([pc_epc[0], pc_epc[1]]);
        if usize::from(pc >> 11) != epc_words {
            return Err(MercuryError::VerifyFailed { what: "PC length bits" });
        }
        if pc_epc[2..] != data.epc[..] {
            return Err(MercuryError::VerifyFailed { what: "EPC" });
        }
        if !user.is_empty() {
            let back =
                self.read_words(Bank::User, 0, user.len() / 2, access, Some(&select), "user memory")?;
            if back != user {
                return Err(MercuryError::VerifyFailed { what: "user memory" });
            }
        }
        let back = zeroize::Zeroizing::new(self.read_words(
            Bank::Reserved,
            0,
            4,
            access,
            Some(&select),
            "passwords",
        )?);
        if back[..] != passwords.reserved_bank()[..] {
            return Err(MercuryError::VerifyFailed { what: "passwords" });
        }

        let (mask, action) = self.profile.lock_payload();
        if mask != 0 {
            let resp = self.exchange(&Command::Lock {
                timeout_ms: self.profile.tag_op_timeout_ms,
                password: access,
                mask,
                action,
                select: Some(select),
            })?;
            self.tag_status(resp.status, |status| MercuryError::LockFailed { status })?;
        }
        Ok(())
    }

    /// Kills the tag with this TID (Gen2 Kill with its derived kill password), so that a sticker
    /// that failed half-way can never be read as valid. The tag must be the one in the field.
    pub fn kill_tag(&mut self, tid: &[u8]) -> Result<(), MercuryError> {
        if !self.ready {
            self.start()?;
        }
        let passwords = self.secret.passwords_for(tid);
        let resp = self.exchange(&Command::Kill {
            timeout_ms: self.profile.tag_op_timeout_ms,
            kill_password: passwords.kill,
            select: Some(Select::tid(tid)),
        })?;
        match resp.status {
            Status::INVALID_KILL_PASSWORD => Err(MercuryError::WrongPassword),
            status => self.tag_status(status, |status| MercuryError::Module { what: "kill", status }),
        }
    }

    /// Version and region only; never touches a tag.
    pub fn check(&mut self) -> Result<SelfTestReport, MercuryError> {
        let mut lines = Vec::new();
        let mut ok = true;
        let resp = self.expect_ok(&Command::GetVersion, "get version")?;
        let version = VersionInfo::parse(&resp.data).map_err(|e| MercuryError::Protocol(e.to_string()))?;
        lines.push(format!(
            "{} hardware {:02x}.{:02x}.{:02x}.{:02x}, firmware {}, bootloader {}",
            version.model(),
            version.hardware[0],
            version.hardware[1],
            version.hardware[2],
            version.hardware[3],
            version.firmware_string(),
            version.bootloader_string()
        ));
        self.version = Some(version);
        let resp = self.exchange(&Command::GetRegion)?;
        match (resp.status, resp.data.first()) {
            (Status::OK, Some(r)) if Region(*r) == self.profile.region => {
                lines.push(format!("region {} as configured", Region(*r).name()));
            }
            (Status::OK, Some(r)) => {
                ok = false;
                lines.push(format!(
                    "region is {}, configured {}: restart the encoder service to set it",
                    Region(*r).name(),
                    self.profile.region.name()
                ));
            }
            (Status::INVALID_OPCODE, _) => {
                ok = false;
                lines.push("module is in its bootloader: the application firmware is not started".into());
            }
            (status, _) => {
                ok = false;
                lines.push(format!("get region: module status {status}"));
            }
        }
        Ok(SelfTestReport { device: "rfid".into(), ok, lines })
    }
}

impl TagEncoder for MercuryEncoder {
    fn init(&mut self) -> Result<(), DeviceError> {
        let path = self.link.path().to_string();
        self.start().map_err(|e| e.into_device_error(&path))
    }

    fn encode(&mut self, data: &TagData) -> Result<EncodedTag, DeviceError> {
        let path = self.link.path().to_string();
        self.encode_tag(data).map_err(|e| e.into_write_error(&path))
    }

    fn void(&mut self, tid: &[u8]) -> Result<(), DeviceError> {
        let path = self.link.path().to_string();
        self.kill_tag(tid).map_err(|e| e.into_write_error(&path))
    }

    /// Version and region checks. A module still in its bootloader (power-cycled, or never
    /// started since vand opened it) is started first, as any job would: that sets region,
    /// protocol and power, and writes nothing to a tag.
    fn self_test(&mut self) -> Result<SelfTestReport, DeviceError> {
        let path = self.link.path().to_string();
        let report = self.check().map_err(|e| e.into_device_error(&path))?;
        if report.ok || !report.lines.iter().any(|l| l.contains("bootloader")) {
            return Ok(report);
        }
        self.start().map_err(|e| e.into_device_error(&path))?;
        let mut after = self.check().map_err(|e| e.into_device_error(&path))?;
        after.lines.insert(0, "module was in its bootloader: application firmware started".into());
        Ok(after)
    }
}
