//! The Mercury tag encoder driver: runs the Gen2 encoding sequence over a [`Link`] with the pure
//! codec. Synchronous; it lives on the thread that owns the port.

use std::time::{Duration, Instant};

use super::codec::{
    Bank, Command, Dialect, PROTOCOL_GEN2, Password, Region, Response, ResponseDecoder, Select, Status,
    VersionInfo, opcode, parse_read_data, parse_tag_count,
};
use super::profile::{TagPasswords, TagProfile, TagSecret};
use crate::devices::rfid::{EncodedTag, TagData, TagEncoder};
use crate::devices::{DeviceError, Fault, Link, LinkError, RfidFault, SelfTestReport};

/// Words per Write Tag Data command (kept small: tags write word by word on the air).
const WRITE_CHUNK_WORDS: usize = 16;
/// Words per Read Tag Data command.
const READ_CHUNK_WORDS: usize = 32;

/// What the Mercury C API 1.35 sends in `TMR_connect` and before each `TMR_read` that this driver
/// deliberately does not send, with the reason. The frames the driver does send for a command have
/// the API's form for the module's firmware ([`Dialect`]); `tests/mercury.rs` checks this list
/// against frames captured from the API. The API also sends the antenna search list (`91 02 01 01`)
/// before every read; the driver sends it once per start, since nothing else changes it.
pub const NOT_SENT_LIKE_THE_API: &[(u8, &str)] = &[
    (0x06, "Set Baud Rate: the configured baud rate is the module's, no probing or switching"),
    (0x68, "Get Power Mode: the driver never puts the module to sleep, so no wake-up preamble is needed"),
    (0x6A, "Get Reader Configuration: transport, product group and read filter do not change what it sends"),
    (0x63, "Get Protocol: the driver sets Gen2 (0x93) unconditionally instead of reading it first"),
    (0x70, "Available Protocols: Gen2 is set; a module without it refuses Set Protocol, which is reported"),
    (0x61, "Antenna Detect: one antenna on port 1; a missing antenna shows as no tag or a status error"),
    (0x67, "Get Region: the configured region is set (0x97) at every start instead of read first"),
    (0x71, "Supported Regions: a region the module lacks is refused by Set Region with 0x010B, reported"),
    (0x6C, "Reset Reader Statistics: the driver does not read statistics"),
    (0x9A, "Set Reader Configuration (read filter): the driver counts tags once, the filter does not matter"),
    (0x29, "Get Tag Buffer: the driver needs the count of tags only, then reads the TID of the single tag"),
];

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
    dialect: Dialect,
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
            dialect: Dialect::PLAIN,
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
        let frame = cmd.encode_in(self.dialect).map_err(|e| MercuryError::BadRequest(e.to_string()))?;
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

    /// The frame forms in use (known after [`MercuryEncoder::start`]).
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Reads the versions (which fix the frame forms), starts the application firmware if the
    /// bootloader runs (Get Current Program, then Boot Firmware, as the C API does) and configures
    /// region, Gen2, power and the antenna list.
    pub fn start(&mut self) -> Result<(), MercuryError> {
        let resp = self.expect_ok(&Command::GetVersion, "get version")?;
        let version = VersionInfo::parse(&resp.data).map_err(|e| MercuryError::Protocol(e.to_string()))?;
        // The C API chooses its frame forms from this first Get Version, before booting.
        self.dialect = Dialect::for_version(&version);
        self.version = Some(version);
        if self.in_bootloader()? {
            let boot = self.expect_ok(&Command::BootFirmware, "boot firmware")?;
            tracing::info!("rfid: application firmware started from the bootloader");
            if let Ok(v) = VersionInfo::parse(&boot.data) {
                self.version = Some(v);
            }
        }
        if let Some(v) = &self.version {
            tracing::info!(
                "rfid: {} firmware {} bootloader {}, {}",
                v.model(),
                v.firmware_string(),
                v.bootloader_string(),
                if self.dialect.multi_select { "multi-select frames" } else { "plain frames" }
            );
        }
        let region = self.profile.region;
        let resp = self.exchange(&Command::SetRegion(region))?;
        if !resp.status.is_ok() {
            return Err(MercuryError::WrongRegion { configured: region.name(), status: resp.status });
        }
        self.expect_ok(&Command::SetProtocol(PROTOCOL_GEN2), "set protocol Gen2")?;
        self.expect_ok(&Command::SetReadPower(self.profile.read_power_cdbm), "set read power")?;
        self.expect_ok(&Command::SetWritePower(self.profile.write_power_cdbm), "set write power")?;
        // The inventory's search flags name the configured antenna list (as the C API's do).
        self.expect_ok(&Command::SetAntennaList(vec![(1, 1)]), "set antenna list")?;
        self.ready = true;
        Ok(())
    }

    /// Get Current Program: whether the bootloader (low bits 1) rather than the application runs.
    fn in_bootloader(&mut self) -> Result<bool, MercuryError> {
        let resp = self.expect_ok(&Command::GetCurrentProgram, "get current program")?;
        match resp.data.first() {
            Some(program) => Ok(program & 0x03 == 1),
            None => Err(MercuryError::Protocol("get current program: empty answer".into())),
        }
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
        // The module counts the tags a search adds to its tag buffer, so the buffer is emptied
        // before each search (as the C API does before each read); a search whose answer was lost
        // is repeated together with the clear.
        let inventory = Command::ReadTagMultiple { timeout_ms: self.profile.inventory_ms };
        self.expect_ok(&Command::ClearTagBuffer, "clear tag buffer")?;
        let resp = match self.exchange_once(&inventory) {
            Err(MercuryError::Protocol(detail)) => {
                tracing::warn!("rfid: {detail}; clearing the tag buffer and searching again");
                self.expect_ok(&Command::ClearTagBuffer, "clear tag buffer")?;
                self.exchange_once(&inventory)?
            }
            other => other?,
        };
        self.tag_status(resp.status, |status| MercuryError::Module { what: "inventory", status })?;
        let count = parse_tag_count(&resp.data).map_err(|e| MercuryError::Protocol(e.to_string()))?;
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
        if self.in_bootloader()? {
            ok = false;
            lines.push("module is in its bootloader: the application firmware is not started".into());
            return Ok(SelfTestReport { device: "rfid".into(), ok, lines });
        }
        let resp = self.expect_ok(&Command::GetRegion, "get region")?;
        match resp.data.first() {
            Some(r) if Region(*r) == self.profile.region => {
                lines.push(format!("region {} as configured", Region(*r).name()));
            }
            Some(r) => {
                ok = false;
                lines.push(format!(
                    "region is {}, configured {}: restart the encoder service to set it",
                    Region(*r).name(),
                    self.profile.region.name()
                ));
            }
            None => return Err(MercuryError::Protocol("get region: empty answer".into())),
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::sim::{SimDevice, SimOut};

    /// The simulator behind a [`Link`] without a PTY; the first answer to `corrupt_op` arrives with
    /// a wrong CRC.
    struct SimLink {
        sim: crate::sim::rfid::MercurySim,
        pending: Vec<u8>,
        corrupt_op: Option<u8>,
        sent: Arc<Mutex<Vec<u8>>>,
    }

    impl Link for SimLink {
        fn write_all(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
            self.sent.lock().unwrap().extend_from_slice(bytes);
            for out in self.sim.receive(bytes, Instant::now()) {
                if let SimOut::Send(mut frame) = out {
                    if Some(frame[2]) == self.corrupt_op {
                        self.corrupt_op = None;
                        let last = frame.len() - 1;
                        frame[last] ^= 0x01;
                    }
                    self.pending.extend_from_slice(&frame);
                }
            }
            Ok(())
        }

        fn read_some(&mut self, buf: &mut [u8], _deadline: Instant) -> Result<usize, LinkError> {
            if self.pending.is_empty() {
                return Err(LinkError::Timeout { device: "rfid".into(), path: "sim".into(), waited_ms: 0 });
            }
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }

        fn discard_input(&mut self) -> Result<(), LinkError> {
            self.pending.clear();
            Ok(())
        }

        fn path(&self) -> &str {
            "sim"
        }
    }

    #[test]
    fn a_lost_inventory_answer_repeats_clear_and_search() {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let sim = crate::sim::rfid::MercurySim::from_options(&"timing_scale = 0".parse().unwrap()).unwrap();
        let link = SimLink { sim, pending: Vec::new(), corrupt_op: Some(0x22), sent: sent.clone() };
        let profile = TagProfile::from_options(&"password_file = \"/x\"".parse().unwrap()).unwrap();
        let secret = TagSecret::from_bytes(&[7; 16]).unwrap();
        let mut enc = MercuryEncoder::new(Box::new(link), profile, secret, Duration::from_millis(10));
        enc.start().unwrap();
        // The repeated search alone would find the tag already in the buffer and count 0 new ones.
        let tid = enc.single_tag_tid().unwrap();
        assert_eq!(hex::encode_upper(tid), "E28011702000000000000001");
        let sent = sent.lock().unwrap();
        let ops: Vec<u8> = {
            let mut at = 0;
            let mut ops = Vec::new();
            while at < sent.len() {
                ops.push(sent[at + 2]);
                at += usize::from(sent[at + 1]) + 5;
            }
            ops
        };
        let search: Vec<u8> = ops.into_iter().filter(|op| matches!(op, 0x2A | 0x22)).collect();
        assert_eq!(search, vec![0x2A, 0x22, 0x2A, 0x22]);
    }
}
