//! Simulated ThingMagic Mercury module (M6e Nano class) with Gen2 tags in its field.
//!
//! It parses frames itself (independently of the driver's codec: its own frame scanner, and the
//! CRC computed through the CRC-16/SPI-FUJITSU identity instead of the driver's bit loop), starts in
//! its bootloader, keeps region/protocol/power, and enforces the Gen2 rules the encoder relies on:
//! locked fields need the access password (secured state), permalocked fields never change, a wrong
//! password fails. Which status a real module returns for a failed Gen2 Access is not in the C
//! source; this simulator answers 0x0424 (memory locked).
//!
//! It answers every command the ThingMagic Mercury C API 1.35.1.43 sends in `TMR_connect`,
//! `TMR_read` with the tag buffer, tag reads with EPC or TID filters, writes, password writes, locks
//! and kills (checked against frames captured from that API in `tests/data/mercury/`), reporting
//! Nano firmware 01.09.00.14, for which the API uses the 0x88 multi-select prefix and select
//! trailers. Nothing is executed before the whole frame is parsed: an opcode the running program
//! does not know gets 0x0101 (invalid opcode), a data length or layout the opcode does not have
//! 0x0100 (wrong number of data), a value out of range 0x0105 (invalid parameter), each with a
//! warning in the log. Not modelled, and refused rather than guessed: chained selects, select
//! targets other than SL with action 0, the 0x81/0x84 prefixes, secure reads, continuous reading.
//!
//! Scenario options (`[rfid]` table):
//! ```toml
//! timing_scale = 1.0        # 0 in tests: no waits
//! start = "bootloader"      # or "app"
//! firmware = "01.09.00.14"  # reported version; before 01.09.00.0D no 0x88 multi-select prefix
//! [[rfid.tags]]
//! tid = "E28011702000000000000001"
//! epc = "300833B2DDD9014000000000"   # optional
//! user_words = 32
//! access_password = "00000000"      # hex
//! kill_password = "00000000"
//! locked = []                        # epc, user, tid, access, kill
//! roll_seed = 1        # serial of the first blank tag of the roll (used when no tags are given)
//! auto_feed = true     # an inventory that finds the tag finished here places the next blank
//! ```
//!
//! The roll of blank tags: TID `E2801170 2000` + a 48-bit serial (`roll_seed`, then steps of a
//! fixed odd stride, so no two blanks share a TID). With `auto_feed`, a tag locked or killed by
//! this simulator is taken off at the next inventory and the next blank placed; the control verb
//! `next` (`van-sim ctl tag next`) does it by hand. Successful writes, locks and kills go to the
//! ledger ([`SimDevice::take_ledger`]).
//! Faults: `no_tag`, `two_tags`, `write_fail`, `lock_fail`, `wrong_region`, `garbage` (noise and a
//! corrupted copy before every response), `mute` (answers nothing), `corrupt_next` (the next
//! response arrives with a wrong CRC and nothing else).

use std::time::{Duration, Instant};

use super::ledger::Event;
use super::{SimDevice, SimOut};

const FAULTS: &[&str] =
    &["no_tag", "two_tags", "write_fail", "lock_fail", "wrong_region", "garbage", "mute", "corrupt_next"];

// Status words (tmr_status.h).
const OK: u16 = 0x0000;
const WRONG_DATA: u16 = 0x0100;
const INVALID_OPCODE: u16 = 0x0101;
const POWER_TOO_HIGH: u16 = 0x0103;
const INVALID_PARAMETER: u16 = 0x0105;
const INVALID_REGION: u16 = 0x010B;
const NO_TAGS: u16 = 0x0400;
const NO_PROTOCOL: u16 = 0x0401;
const INVALID_PROTOCOL: u16 = 0x0402;
const AFE_NOT_ON: u16 = 0x0405;
const WRITE_FAILED: u16 = 0x0406;
const KILL_PASSWORD: u16 = 0x040C;
const MEMORY_OVERRUN: u16 = 0x0423;
const MEMORY_LOCKED: u16 = 0x0424;
const NON_SPECIFIC: u16 = 0x042F;
const POWER_TOO_LOW: u16 = 0x0106;
const INVALID_BAUD_RATE: u16 = 0x010A;

/// Prefix before the option byte of tag commands when several selects may follow
/// (`TMR_SR_TAGOP_MULTI_SELECT`); firmware that supports it echoes it in the reply.
const MULTI_SELECT: u8 = 0x88;
/// Select trailer: target "SL flag" (`SELECT`), and the end-of-select indicator.
const SELECT_TARGET_SL: u8 = 0x04;
const END_OF_SELECT: u8 = 0x00;
/// Tag read metadata the module reports (read count … Gen2 target, `TMR_TRD_METADATA_FLAG_*`).
const METADATA_SUPPORTED: u16 = 0x0FFF;
/// TID of every blank on the roll: E2 (Gen2 class), Impinj MDID with the XTID bit, model 0x170,
/// XTID header 0x2000; then a 48-bit serial.
const ROLL_TID_PREFIX: [u8; 6] = [0xE2, 0x80, 0x11, 0x70, 0x20, 0x00];
/// Step between the serials of successive blanks: odd, so 2^48 blanks never repeat a serial.
const ROLL_STRIDE: u64 = 0x5DEE_CE66_D1CD;
const SERIAL_MASK: u64 = (1 << 48) - 1;
/// Largest data part of a reply frame.
const MAX_REPLY: usize = 0xF8;

/// Opcodes the bootloader answers; every other gets 0x0101.
const BOOT_OPCODES: &[u8] = &[0x03, 0x04, 0x06, 0x0C];
/// Opcodes the application answers; every other (Boot Firmware included) gets 0x0101.
const APP_OPCODES: &[u8] = &[
    0x03, 0x06, 0x0C, 0x22, 0x23, 0x24, 0x25, 0x26, 0x28, 0x29, 0x2A, 0x61, 0x62, 0x63, 0x64, 0x67, 0x68,
    0x6A, 0x6C, 0x70, 0x71, 0x91, 0x92, 0x93, 0x94, 0x97, 0x98, 0x9A,
];
/// Baud rates Set Baud Rate accepts (the C API's probe list).
const BAUD_RATES: &[u32] = &[9600, 19200, 38400, 57600, 115_200, 230_400, 460_800, 921_600];
/// Regions the simulated Nano supports: NA, IN, JP, PRC, EU3, KR2, AU, NZ, open.
const REGIONS: &[u8] = &[0x01, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0B, 0x0C, 0xFF];
/// Transmit power limits, centi-dBm (M6e Nano: 5 to 27 dBm).
const MAX_POWER: u16 = 2700;
const MIN_POWER: u16 = 500;

/// Version data: bootloader, hardware (0x30 = M6e Nano), firmware date, firmware, protocols (Gen2).
const VERSION: [u8; 20] = [
    0x12, 0x08, 0x00, 0x00, 0x30, 0x01, 0x00, 0x00, 0x20, 0x23, 0x04, 0x14, 0x01, 0x09, 0x00, 0x14, 0x00,
    0x00, 0x00, 0x10,
];

fn sim_crc(bytes: &[u8]) -> u16 {
    // ThingMagic's CRC = CRC-16/SPI-FUJITSU of all but the last two bytes, XOR those two bytes.
    static FUJITSU: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_SPI_FUJITSU);
    match bytes.len() {
        // Frame bodies always hold at least length and opcode.
        0 | 1 => 0,
        n => FUJITSU.checksum(&bytes[..n - 2]) ^ u16::from_be_bytes([bytes[n - 2], bytes[n - 1]]),
    }
}

fn response_frame(op: u8, status: u16, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0xFF, data.len() as u8, op, (status >> 8) as u8, status as u8];
    f.extend_from_slice(data);
    let crc = sim_crc(&f[1..]);
    f.push((crc >> 8) as u8);
    f.push(crc as u8);
    f
}

/// Lock state of one Gen2 field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FieldLock {
    locked: bool,
    perma: bool,
}

impl FieldLock {
    fn describe(self) -> &'static str {
        match (self.locked, self.perma) {
            (false, false) => "unlocked",
            (true, false) => "locked",
            (false, true) => "permaunlocked",
            (true, true) => "permalocked",
        }
    }
}

/// Field order in the lock payload, from the lowest bit pair: user, tid, epc, access, kill.
#[derive(Debug, Clone, Default)]
struct Locks {
    fields: [FieldLock; 5],
}

const USER_F: usize = 0;
const TID_F: usize = 1;
const EPC_F: usize = 2;
const ACCESS_F: usize = 3;
const KILL_F: usize = 4;
const FIELD_NAMES: [&str; 5] = ["user", "tid", "epc", "access", "kill"];

#[derive(Debug, Clone)]
struct SimTag {
    tid: Vec<u8>,
    /// Word 0 StoredCRC, word 1 PC, then the EPC.
    epc_bank: Vec<u8>,
    user: Vec<u8>,
    /// Kill (0–3) then access (4–7) password bytes.
    reserved: [u8; 8],
    locks: Locks,
    /// User memory bytes written so far (end of the furthest write).
    user_written: usize,
    /// Locked by a Lock command here: a finished sticker (see `auto_feed`).
    sealed: bool,
}

impl SimTag {
    fn new(tid: Vec<u8>, epc: &[u8], user_words: usize) -> SimTag {
        let mut t = SimTag {
            tid,
            epc_bank: vec![0, 0, 0, 0],
            user: vec![0; user_words * 2],
            reserved: [0; 8],
            locks: Locks::default(),
            user_written: 0,
            sealed: false,
        };
        // The chip maker permalocks the TID.
        t.locks.fields[TID_F] = FieldLock { locked: true, perma: true };
        t.set_epc(epc);
        t
    }

    fn set_epc(&mut self, epc: &[u8]) {
        let words = (epc.len() / 2) as u16;
        let old_pc = u16::from_be_bytes([self.epc_bank[2], self.epc_bank[3]]);
        let pc = (words << 11) | (old_pc & 0x07FF);
        self.epc_bank.truncate(2);
        self.epc_bank.extend_from_slice(&pc.to_be_bytes());
        self.epc_bank.extend_from_slice(epc);
        self.update_crc();
    }

    fn update_crc(&mut self) {
        static GEN2: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_GENIBUS);
        let crc = GEN2.checksum(&self.epc_bank[2..]);
        self.epc_bank[..2].copy_from_slice(&crc.to_be_bytes());
    }

    fn access_password(&self) -> u32 {
        u32::from_be_bytes([self.reserved[4], self.reserved[5], self.reserved[6], self.reserved[7]])
    }

    fn kill_password(&self) -> u32 {
        u32::from_be_bytes([self.reserved[0], self.reserved[1], self.reserved[2], self.reserved[3]])
    }

    fn bank(&self, bank: u8) -> Option<&[u8]> {
        match bank {
            0 => Some(&self.reserved[..]),
            1 => Some(&self.epc_bank),
            2 => Some(&self.tid),
            3 => Some(&self.user),
            _ => None,
        }
    }

    /// Gen2 secured state: a zero access password secures without Access; otherwise the supplied
    /// password must match.
    fn secured(&self, supplied: u32) -> Option<bool> {
        let own = self.access_password();
        if supplied == 0 {
            Some(own == 0)
        } else if supplied == own {
            Some(true)
        } else {
            None // Access with a wrong password fails outright
        }
    }

    fn matches(&self, sel: &Selection) -> bool {
        let matched = if let Some(bits) = sel.epc_bits {
            usize::from(bits) == self.epc_words() * 16
        } else if let Some(bank_no) = sel.bank {
            let Some(mem) = self.bank(bank_no) else { return false };
            (0..sel.bits).all(|i| {
                let bit = sel.pointer as usize + i;
                let Some(m) = mem.get(bit / 8) else { return false };
                let have = (m >> (7 - bit % 8)) & 1;
                let want = sel.mask.get(i / 8).map(|b| (b >> (7 - i % 8)) & 1).unwrap_or(2);
                have == want
            })
        } else {
            true
        };
        matched != sel.invert
    }

    /// EPC length in words, from the PC.
    fn epc_words(&self) -> usize {
        usize::from(u16::from_be_bytes([self.epc_bank[2], self.epc_bank[3]]) >> 11)
    }

    /// PC, EPC and StoredCRC as an inventory reports them.
    fn inventory_id(&self) -> Vec<u8> {
        let end = (4 + self.epc_words() * 2).min(self.epc_bank.len());
        let mut out = self.epc_bank[2..end].to_vec();
        out.extend_from_slice(&self.epc_bank[..2]);
        out
    }

    /// The ledger's record of a write that just succeeded on this tag.
    fn written(&self, op: &str) -> Event {
        let epc_words = self.epc_words();
        Event::TagWritten {
            tid: hex::encode_upper(&self.tid),
            epc: hex::encode_upper(&self.epc_bank[4..(4 + epc_words * 2).min(self.epc_bank.len())]),
            locked: self.locks.fields[EPC_F].locked,
            user_bytes: self.user_written as u64,
            op: op.into(),
        }
    }

    fn status_json(&self) -> serde_json::Value {
        let epc_words = usize::from(u16::from_be_bytes([self.epc_bank[2], self.epc_bank[3]]) >> 11);
        let locks: serde_json::Map<String, serde_json::Value> = FIELD_NAMES
            .iter()
            .zip(self.locks.fields.iter())
            .map(|(n, l)| (n.to_string(), l.describe().into()))
            .collect();
        serde_json::json!({
            "tid": hex::encode_upper(&self.tid),
            "pc": hex::encode_upper(&self.epc_bank[2..4]),
            "epc": hex::encode_upper(&self.epc_bank[4..(4 + epc_words * 2).min(self.epc_bank.len())]),
            "user": hex::encode_upper(&self.user),
            "access_password_set": self.access_password() != 0,
            "kill_password_set": self.kill_password() != 0,
            "locks": locks,
        })
    }
}

/// Parsed singulation part of a tag command.
#[derive(Debug, Default)]
struct Selection {
    /// Bank the mask is compared against (1 = EPC bank, where an EPC filter starts at bit 32).
    bank: Option<u8>,
    pointer: u32,
    bits: usize,
    mask: Vec<u8>,
    invert: bool,
    /// Select on the EPC length in bits (option 6).
    epc_bits: Option<u16>,
    password: u32,
}

/// Why a command was not executed: the status word the module answers.
type Refusal = u16;

/// Reads big-endian fields off a command's data; a short read is "wrong number of data".
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, Refusal> {
        let v = *self.data.get(self.at).ok_or(WRONG_DATA)?;
        self.at += 1;
        Ok(v)
    }
    fn u16(&mut self) -> Result<u16, Refusal> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Result<u32, Refusal> {
        Ok(u32::from_be_bytes([self.u8()?, self.u8()?, self.u8()?, self.u8()?]))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], Refusal> {
        let end = self.at.checked_add(n).ok_or(WRONG_DATA)?;
        let s = self.data.get(self.at..end).ok_or(WRONG_DATA)?;
        self.at = end;
        Ok(s)
    }
    fn rest(&mut self) -> &'a [u8] {
        let s = self.data.get(self.at..).unwrap_or(&[]);
        self.at = self.data.len();
        s
    }
    /// Every byte must have been used.
    fn end(&self) -> Result<(), Refusal> {
        if self.at == self.data.len() { Ok(()) } else { Err(WRONG_DATA) }
    }

    /// The optional multi-select prefix (0x88) and the option byte of a tag command. Other
    /// prefixes (0x81 BAP, 0x84 read-after-write) are not modelled and refused.
    fn option(&mut self, multi_select: bool) -> Result<(bool, u8), Refusal> {
        match self.u8()? {
            MULTI_SELECT if multi_select => Ok((true, self.u8()?)),
            b if b & 0x80 != 0 => Err(INVALID_PARAMETER),
            b => Ok((false, b)),
        }
    }

    /// The singulation fields selected by `option` (layout of the C API's `filterbytes`): the
    /// access password (when `with_password`), the select, and after a 0x88 prefix the trailer
    /// target, action, end-of-select (00).
    fn selection(&mut self, option: u8, multi: bool, with_password: bool) -> Result<Selection, Refusal> {
        let kind = option & 0x07;
        // 0x40 secure read is not modelled.
        if option & 0x40 != 0 {
            return Err(INVALID_PARAMETER);
        }
        let mut sel = Selection { invert: option & 0x08 != 0, ..Selection::default() };
        let extended = option & 0x20 != 0;
        match kind {
            0 => {
                // Nothing follows "select disabled"; invert or extended length make no sense.
                return if option & 0x28 != 0 { Err(INVALID_PARAMETER) } else { Ok(sel) };
            }
            5 => {
                if with_password {
                    sel.password = self.u32()?;
                }
            }
            1 => {
                // EPC filter: length and EPC bits, compared from the EPC's first bit (bit 32 of the
                // EPC bank); no bit address.
                if with_password {
                    sel.password = self.u32()?;
                }
                sel.bank = Some(1);
                sel.pointer = 32;
                sel.bits = if extended { usize::from(self.u16()?) } else { usize::from(self.u8()?) };
                sel.mask = self.take(sel.bits.div_ceil(8))?.to_vec();
            }
            2..=4 => {
                if with_password {
                    sel.password = self.u32()?;
                }
                sel.bank = Some(if kind == 4 { 1 } else { kind });
                sel.pointer = self.u32()?;
                sel.bits = if extended { usize::from(self.u16()?) } else { usize::from(self.u8()?) };
                sel.mask = self.take(sel.bits.div_ceil(8))?.to_vec();
            }
            6 => sel.epc_bits = Some(self.u16()?),
            _ => return Err(INVALID_PARAMETER),
        }
        if multi {
            let target = self.u8()?;
            let action = self.u8()?;
            let end = self.u8()?;
            // One select, target SL with action "matching assert, others deassert" (the API's
            // default); chained selects and other targets/actions are not modelled.
            if target != SELECT_TARGET_SL || action != 0 || end != END_OF_SELECT {
                return Err(INVALID_PARAMETER);
            }
        }
        Ok(sel)
    }
}

/// Fields of a Gen2 tag command before its singulation part.
struct TagCommand {
    multi: bool,
    option: u8,
    metadata: u16,
    sel: Selection,
}

/// A fully parsed Gen2 tag command.
enum ParsedOp {
    Inventory { cmd: TagCommand, flags: u16, timeout: u16 },
    Read { cmd: TagCommand, bank: u8, address: usize, count: usize },
    Write { cmd: TagCommand, bank: u8, address: usize, data: Vec<u8> },
    WriteEpc { cmd: TagCommand, epc: Vec<u8> },
    Lock { cmd: TagCommand, mask: u16, action: u16 },
    Kill { cmd: TagCommand, password: u32 },
}

#[derive(Debug, Default, Clone)]
struct Faults {
    no_tag: bool,
    two_tags: bool,
    write_fail: bool,
    lock_fail: bool,
    wrong_region: bool,
    garbage: bool,
    mute: bool,
    corrupt_next: bool,
}

/// The simulated module.
pub struct MercurySim {
    timing_scale: f64,
    in_app: bool,
    region: u8,
    protocol: u16,
    read_power: u16,
    write_power: u16,
    /// Get Version data (bootloader, hardware, firmware date, firmware, protocols).
    version: [u8; 20],
    baud: u32,
    power_mode: u8,
    /// Reader configuration values set by the host (key → value).
    config: std::collections::BTreeMap<u8, Vec<u8>>,
    /// Tag buffer: PC + EPC + CRC of each tag found since the last clear, and the read position.
    buffer: Vec<Vec<u8>>,
    buffer_read: usize,
    tags: Vec<SimTag>,
    faults: Faults,
    rx: Vec<u8>,
    commands: u64,
    bad_frames: u64,
    killed: u64,
    /// Serial of the roll's first blank tag.
    roll_seed: u64,
    /// Blank tags taken off the roll so far.
    fed: u64,
    /// Place the next blank when a search finds the field's tag finished (locked or killed here).
    auto_feed: bool,
    /// A tag was locked or killed here since the last blank was placed.
    spent: bool,
    /// What was written or killed since the host last took it.
    ledger: Vec<Event>,
}

fn hex_option(table: &toml::Table, key: &str) -> Result<Option<Vec<u8>>, String> {
    match table.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => {
            hex::decode(s).map(Some).map_err(|_| format!("rfid tag option {key}: not hex: {s:?}"))
        }
        Some(_) => Err(format!("rfid tag option {key}: expected a hex string")),
    }
}

fn password_option(table: &toml::Table, key: &str) -> Result<[u8; 4], String> {
    match hex_option(table, key)? {
        None => Ok([0; 4]),
        Some(b) => b.try_into().map_err(|_| format!("rfid tag option {key}: expected 8 hex digits")),
    }
}

impl MercurySim {
    /// A module in its bootloader with one blank tag and realistic timing (scale 1).
    pub fn new() -> MercurySim {
        let mut sim = MercurySim {
            timing_scale: 1.0,
            in_app: false,
            region: 0,
            protocol: 0,
            read_power: 0,
            write_power: 0,
            version: VERSION,
            baud: 115_200,
            power_mode: 0,
            config: std::collections::BTreeMap::new(),
            buffer: Vec::new(),
            buffer_read: 0,
            tags: Vec::new(),
            faults: Faults::default(),
            rx: Vec::new(),
            commands: 0,
            bad_frames: 0,
            killed: 0,
            roll_seed: 1,
            fed: 0,
            auto_feed: true,
            spent: false,
            ledger: Vec::new(),
        };
        let first = sim.next_blank();
        sim.tags.push(first);
        sim
    }

    /// The next blank tag off the roll: TID `E2801170 2000` + a 48-bit serial (`roll_seed`, then
    /// steps of an odd stride, so no two blanks share a TID), EPC `3000` + zeros + the same serial,
    /// 32 words of user memory, zero passwords, nothing locked but the factory's TID.
    fn next_blank(&mut self) -> SimTag {
        let serial = self.roll_seed.wrapping_add(self.fed.wrapping_mul(ROLL_STRIDE)) & SERIAL_MASK;
        self.fed += 1;
        let serial = &serial.to_be_bytes()[2..];
        let mut tid = ROLL_TID_PREFIX.to_vec();
        tid.extend_from_slice(serial);
        let mut epc = vec![0x30, 0x00, 0, 0, 0, 0];
        epc.extend_from_slice(serial);
        SimTag::new(tid, &epc, 32)
    }

    /// Takes every tag off the field and places the next blank from the roll; returns its TID.
    pub fn feed_next(&mut self) -> Vec<u8> {
        let blank = self.next_blank();
        let tid = blank.tid.clone();
        self.tags.clear();
        self.tags.push(blank);
        self.spent = false;
        tracing::info!("rfid sim: blank tag {} placed", hex::encode_upper(&tid));
        tid
    }

    /// `auto_feed`: a search that finds the sticker finished here (locked, or killed) takes it off
    /// and places the next blank, as the officer does before the next encode.
    fn auto_feed(&mut self) {
        if self.auto_feed && self.spent {
            self.tags.retain(|t| !t.sealed);
            if self.tags.is_empty() {
                self.feed_next();
            }
            self.spent = false;
        }
    }

    /// Builds the simulator from scenario options; unknown keys are refused with the known ones.
    pub fn from_options(options: &toml::Table) -> Result<MercurySim, String> {
        let mut sim = MercurySim::new();
        let mut own_tags = false;
        for (key, value) in options {
            match (key.as_str(), value) {
                ("timing_scale", toml::Value::Float(f)) if *f >= 0.0 => sim.timing_scale = *f,
                ("timing_scale", toml::Value::Integer(i)) if *i >= 0 => sim.timing_scale = *i as f64,
                ("start", toml::Value::String(s)) if s == "bootloader" || s == "app" => {
                    sim.in_app = s == "app"
                }
                ("tags", toml::Value::Array(items)) => {
                    own_tags = true;
                    sim.tags.clear();
                    for item in items {
                        let t = item.as_table().ok_or("rfid option tags: expected a list of tables")?;
                        sim.tags.push(Self::tag_from_table(t)?);
                    }
                }
                ("firmware", toml::Value::String(s)) => {
                    let digits: String = s.chars().filter(|c| *c != '.').collect();
                    let bytes: [u8; 4] =
                        hex::decode(&digits).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| {
                            format!(
                                "rfid option firmware: expected 4 hex bytes like \"01.09.00.14\", got {s:?}"
                            )
                        })?;
                    sim.version[12..16].copy_from_slice(&bytes);
                }
                ("roll_seed", toml::Value::Integer(i)) if (0..=SERIAL_MASK as i64).contains(i) => {
                    sim.roll_seed = *i as u64
                }
                ("auto_feed", toml::Value::Boolean(b)) => sim.auto_feed = *b,
                ("timing_scale" | "start" | "tags" | "firmware" | "roll_seed" | "auto_feed", v) => {
                    return Err(format!("rfid option {key}: unexpected value {v}"));
                }
                _ => {
                    return Err(format!(
                        "rfid: unknown option {key}; known: timing_scale, start, tags, firmware, roll_seed, auto_feed"
                    ));
                }
            }
        }
        if !own_tags {
            // The first blank comes from the roll as the scenario set it up.
            sim.fed = 0;
            sim.tags.clear();
            let first = sim.next_blank();
            sim.tags.push(first);
        }
        Ok(sim)
    }

    fn tag_from_table(t: &toml::Table) -> Result<SimTag, String> {
        let tid = hex_option(t, "tid")?.ok_or("rfid tag: tid is required")?;
        let epc = hex_option(t, "epc")?.unwrap_or_else(|| vec![0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        if epc.len() % 2 != 0 {
            return Err("rfid tag epc: must be whole words".into());
        }
        let user_words = match t.get("user_words") {
            None => 32,
            Some(toml::Value::Integer(n)) if (0..=512).contains(n) => *n as usize,
            Some(_) => return Err("rfid tag user_words: expected 0..=512".into()),
        };
        let mut tag = SimTag::new(tid, &epc, user_words);
        tag.reserved[..4].copy_from_slice(&password_option(t, "kill_password")?);
        tag.reserved[4..].copy_from_slice(&password_option(t, "access_password")?);
        if let Some(v) = t.get("locked") {
            let items = v.as_array().ok_or("rfid tag locked: expected a list")?;
            for item in items {
                let name = item.as_str().unwrap_or("");
                let i = FIELD_NAMES
                    .iter()
                    .position(|n| *n == name)
                    .ok_or_else(|| format!("rfid tag locked: unknown field {name:?}"))?;
                tag.locks.fields[i].locked = true;
            }
        }
        Ok(tag)
    }

    fn field_tags(&self) -> Vec<usize> {
        if self.faults.no_tag {
            return Vec::new();
        }
        (0..self.tags.len()).collect()
    }

    fn wait(&self, ms: f64) -> Option<SimOut> {
        let scaled = ms * self.timing_scale;
        (scaled > 0.0).then(|| SimOut::Wait(Duration::from_secs_f64(scaled / 1000.0)))
    }

    /// Handles one frame with a good CRC; returns (status, data, simulated duration in ms). A
    /// command that is not fully understood never gets status 0: an unknown opcode gets 0x0101,
    /// a data length or layout the opcode does not have 0x0100, a value out of range 0x0105.
    fn handle(&mut self, op: u8, data: &[u8]) -> (u16, Vec<u8>, f64) {
        self.commands += 1;
        let known = if self.in_app { APP_OPCODES.contains(&op) } else { BOOT_OPCODES.contains(&op) };
        if !known {
            tracing::warn!(
                "rfid sim: opcode 0x{op:02X} is not a {} command: 0x0101",
                if self.in_app { "application" } else { "bootloader" }
            );
            return (INVALID_OPCODE, Vec::new(), 1.0);
        }
        let mut r = Reader { data, at: 0 };
        match self.command(op, &mut r) {
            Ok(answer) => answer,
            Err(status) => {
                tracing::warn!(
                    "rfid sim: command 0x{op:02X} with {} data bytes refused with 0x{status:04X}",
                    data.len()
                );
                (status, Vec::new(), 1.0)
            }
        }
    }

    /// Parses and runs one command of a known opcode.
    fn command(&mut self, op: u8, r: &mut Reader<'_>) -> Result<(u16, Vec<u8>, f64), Refusal> {
        let ok = |d: Vec<u8>, ms: f64| Ok((OK, d, ms));
        match op {
            0x03 => {
                r.end()?;
                ok(self.version.to_vec(), 2.0)
            }
            0x04 => {
                r.end()?;
                self.in_app = true;
                ok(self.version.to_vec(), 250.0)
            }
            0x0C => {
                r.end()?;
                ok(vec![if self.in_app { 0x02 } else { 0x01 }], 1.0)
            }
            0x06 => {
                let rate = r.u32()?;
                r.end()?;
                if !BAUD_RATES.contains(&rate) {
                    return Err(INVALID_BAUD_RATE);
                }
                self.baud = rate;
                ok(Vec::new(), 2.0)
            }
            0x68 => {
                r.end()?;
                ok(vec![self.power_mode], 1.0)
            }
            0x98 => {
                let mode = r.u8()?;
                r.end()?;
                if mode > 4 {
                    return Err(INVALID_PARAMETER);
                }
                self.power_mode = mode;
                ok(Vec::new(), 1.0)
            }
            0x6A => {
                let form = r.u8()?;
                let key = r.u8()?;
                r.end()?;
                if form != 1 {
                    return Err(INVALID_PARAMETER);
                }
                let value = self.reader_config(key).ok_or(INVALID_PARAMETER)?;
                let mut d = vec![form, key];
                d.extend_from_slice(&value);
                ok(d, 1.0)
            }
            0x9A => {
                let form = r.u8()?;
                let key = r.u8()?;
                let value = r.rest();
                let current = self.reader_config(key).ok_or(INVALID_PARAMETER)?;
                if form != 1 || value.len() != current.len() {
                    return Err(if form != 1 { INVALID_PARAMETER } else { WRONG_DATA });
                }
                // Frames without CRC (key 0x1B off) are not modelled: refused, not pretended.
                if key == 0x1B && value != [0x01] {
                    return Err(INVALID_PARAMETER);
                }
                self.config.insert(key, value.to_vec());
                ok(Vec::new(), 1.0)
            }
            0x63 => match r.rest() {
                [] => ok(self.protocol.to_be_bytes().to_vec(), 1.0),
                [0x01] => ok(vec![0x01, 0x00, 0x05], 1.0),
                [_] => Err(INVALID_PARAMETER),
                _ => Err(WRONG_DATA),
            },
            0x70 => {
                r.end()?;
                ok(vec![0x00, 0x05], 1.0)
            }
            0x71 => {
                r.end()?;
                ok(REGIONS.to_vec(), 1.0)
            }
            0x61 => match r.rest() {
                // Without option: the current TX and RX port.
                [] => ok(vec![0x01, 0x01], 1.0),
                // Option 5: per port, number and whether an antenna is detected.
                [0x05] => ok(vec![0x05, 0x01, 0x01], 5.0),
                [_] => Err(INVALID_PARAMETER),
                _ => Err(WRONG_DATA),
            },
            0x91 => match r.rest() {
                // TX and RX port: the Nano has port 1 only.
                [1, 1] => ok(Vec::new(), 1.0),
                // Option 2: logical antenna search list of (TX, RX) pairs, here only (1, 1).
                [0x02, rest @ ..] if !rest.is_empty() && rest.chunks(2).all(|p| p == [1, 1]) => {
                    ok(Vec::new(), 1.0)
                }
                [_, _] => Err(INVALID_PARAMETER),
                [0x02, ..] => Err(INVALID_PARAMETER),
                _ => Err(WRONG_DATA),
            },
            0x62 | 0x64 => {
                let option = r.u8()?;
                r.end()?;
                let set = if op == 0x62 { self.read_power } else { self.write_power };
                match option {
                    0 => {
                        let mut d = vec![0];
                        d.extend_from_slice(&set.to_be_bytes());
                        ok(d, 1.0)
                    }
                    1 => {
                        let mut d = vec![1];
                        for v in [set, MAX_POWER, MIN_POWER] {
                            d.extend_from_slice(&v.to_be_bytes());
                        }
                        ok(d, 1.0)
                    }
                    _ => Err(INVALID_PARAMETER),
                }
            }
            0x6C => {
                // Reader statistics: option 1 resets the statistics named by the EBV flag field.
                let option = r.u8()?;
                let first = r.u8()?;
                if first & 0x80 != 0 {
                    r.u8()?;
                }
                r.end()?;
                match option {
                    1 => ok(Vec::new(), 1.0),
                    _ => Err(INVALID_PARAMETER),
                }
            }
            0x67 => {
                r.end()?;
                ok(vec![self.region], 1.0)
            }
            0x97 => {
                let region = r.u8()?;
                r.end()?;
                if self.faults.wrong_region || !REGIONS.contains(&region) {
                    return Err(INVALID_REGION);
                }
                self.region = region;
                ok(Vec::new(), 20.0)
            }
            0x93 => {
                let p = r.u16()?;
                r.end()?;
                if p != 0x0005 {
                    return Err(INVALID_PROTOCOL);
                }
                self.protocol = p;
                ok(Vec::new(), 5.0)
            }
            0x92 | 0x94 => {
                let p = r.u16()?;
                r.end()?;
                if p > MAX_POWER {
                    return Err(POWER_TOO_HIGH);
                }
                if p < MIN_POWER {
                    return Err(POWER_TOO_LOW);
                }
                if op == 0x92 {
                    self.read_power = p;
                } else {
                    self.write_power = p;
                }
                ok(Vec::new(), 5.0)
            }
            0x2A => {
                r.end()?;
                self.buffer.clear();
                self.buffer_read = 0;
                ok(Vec::new(), 1.0)
            }
            0x29 => self.tag_buffer(r),
            0x22 | 0x23 | 0x24 | 0x25 | 0x26 | 0x28 => {
                let answer = self.tag_op(op, r)?;
                Ok(answer)
            }
            _ => Err(INVALID_OPCODE),
        }
    }

    /// Whether this firmware takes the 0x88 multi-select prefix: M6e Nano from 01.09.00.0D on (the
    /// C API's `isMultiSelectSupported`); older firmware refuses the prefix as an invalid option.
    fn multi_select(&self) -> bool {
        self.version[4] == 0x30 && self.version[12..16] >= [0x01, 0x09, 0x00, 0x0D][..]
    }

    /// Value of a reader configuration key (Get/Set Reader Optional Parameters, key-value form);
    /// `None` for keys this simulator does not know.
    fn reader_config(&self, key: u8) -> Option<Vec<u8>> {
        if let Some(v) = self.config.get(&key) {
            return Some(v.clone());
        }
        Some(match key {
            // Unique by antenna / data / protocol, extended EPC, RSSI in dBm, send CRC:
            // one byte each.
            0x00 | 0x08 | 0x0B => vec![0x00],
            0x02 | 0x09 | 0x1B => vec![0x01],
            // Enable read filter: on.
            0x0C => vec![0x01],
            // Read filter timeout, ms (0: the module's default).
            0x0D => vec![0, 0, 0, 0],
            // Current message transport: serial (not USB, so the host keeps the CRC).
            0x0E => vec![0x00],
            // Product group ID: 0 = module.
            0x12 => vec![0x00, 0x00],
            _ => return None,
        })
    }

    fn singulate(&self, sel: &Selection) -> Option<usize> {
        self.field_tags().into_iter().find(|&i| self.tags[i].matches(sel))
    }

    /// The fixed part of a tag command: timeout is read by the caller, then the optional 0x88
    /// prefix, the option byte and (with option bit 0x10) the metadata flags where the command
    /// has them.
    fn tag_header(&self, r: &mut Reader<'_>, has_metadata: bool) -> Result<(bool, u8, u16), Refusal> {
        let (multi, option) = r.option(self.multi_select())?;
        let metadata = if option & 0x10 != 0 {
            if !has_metadata {
                return Err(INVALID_PARAMETER);
            }
            let m = r.u16()?;
            if m & !METADATA_SUPPORTED != 0 {
                return Err(INVALID_PARAMETER);
            }
            m
        } else {
            0
        };
        Ok((multi, option, metadata))
    }

    /// Metadata fields of one tag read, in the order of the flag bits (the C API's
    /// `TMR_SR_parseMetadataOnly`); the DATA field carries a zero length (no embedded operation).
    fn metadata_fields(&self, flags: u16) -> Vec<u8> {
        let mut d = Vec::new();
        if flags & 0x0001 != 0 {
            d.push(1); // read count
        }
        if flags & 0x0002 != 0 {
            d.push((-52i8) as u8); // RSSI, dBm
        }
        if flags & 0x0004 != 0 {
            d.push(0x11); // antenna: TX port 1, RX port 1
        }
        if flags & 0x0008 != 0 {
            let khz: u32 = if matches!(self.region, 1 | 13 | 14) { 915_250 } else { 866_900 };
            d.extend_from_slice(&khz.to_be_bytes()[1..]);
        }
        if flags & 0x0010 != 0 {
            d.extend_from_slice(&12u32.to_be_bytes()); // ms since the search started
        }
        if flags & 0x0020 != 0 {
            d.extend_from_slice(&0u16.to_be_bytes()); // phase
        }
        if flags & 0x0040 != 0 {
            d.push(0x05); // Gen2
        }
        if flags & 0x0080 != 0 {
            d.extend_from_slice(&0u16.to_be_bytes());
        }
        if flags & 0x0100 != 0 {
            d.push(0x00); // GPIO
        }
        if flags & 0x0200 != 0 {
            d.push(0x00); // Q
        }
        if flags & 0x0400 != 0 {
            d.push(0x00); // link frequency 250 kHz
        }
        if flags & 0x0800 != 0 {
            d.push(0x00); // target A
        }
        d
    }

    /// Get Tag Buffer (0x29): with metadata flags and read options, the next tags from the buffer;
    /// without data, the buffer's read and write indices.
    fn tag_buffer(&mut self, r: &mut Reader<'_>) -> Result<(u16, Vec<u8>, f64), Refusal> {
        if r.data.is_empty() {
            let mut d = (self.buffer_read as u16).to_be_bytes().to_vec();
            d.extend_from_slice(&(self.buffer.len() as u16).to_be_bytes());
            return Ok((OK, d, 1.0));
        }
        let flags = r.u16()?;
        let read_options = r.u8()?;
        r.end()?;
        if flags & !METADATA_SUPPORTED != 0 || read_options != 0 {
            return Err(INVALID_PARAMETER);
        }
        if self.buffer_read >= self.buffer.len() {
            return Err(NO_TAGS);
        }
        let mut d = flags.to_be_bytes().to_vec();
        d.push(read_options);
        d.push(0);
        let meta = self.metadata_fields(flags);
        let mut count = 0u8;
        while let Some(id) = self.buffer.get(self.buffer_read) {
            let record = meta.len() + 2 + id.len();
            if d.len() + record > MAX_REPLY {
                break;
            }
            d.extend_from_slice(&meta);
            d.extend_from_slice(&((id.len() * 8) as u16).to_be_bytes());
            d.extend_from_slice(id);
            self.buffer_read += 1;
            count += 1;
        }
        d[3] = count;
        Ok((OK, d, 2.0))
    }

    fn tag_op(&mut self, op: u8, r: &mut Reader<'_>) -> Result<(u16, Vec<u8>, f64), Refusal> {
        // Parse the whole command first: nothing is executed on input not fully understood.
        let parsed = self.parse_tag_op(op, r)?;
        // The radio stays off until a region is set; no protocol, no tag operation.
        if self.region == 0 || self.faults.wrong_region {
            return Ok((AFE_NOT_ON, Vec::new(), 1.0));
        }
        if self.protocol != 0x0005 {
            return Ok((NO_PROTOCOL, Vec::new(), 1.0));
        }
        Ok(self.run_tag_op(parsed))
    }

    fn parse_tag_op(&self, op: u8, r: &mut Reader<'_>) -> Result<ParsedOp, Refusal> {
        Ok(match op {
            0x22 => {
                let (multi, option, _) = {
                    let (multi, option) = r.option(self.multi_select())?;
                    (multi, option, 0)
                };
                let flags = r.u16()?;
                let timeout = r.u16()?;
                // Search flags this simulator models: antenna selection bits (0–3) and large tag
                // population support (0x10).
                if flags & !0x0013 != 0 {
                    return Err(INVALID_PARAMETER);
                }
                let metadata = if option & 0x10 != 0 { r.u16()? } else { 0 };
                if metadata & !METADATA_SUPPORTED != 0 {
                    return Err(INVALID_PARAMETER);
                }
                let sel = r.selection(option, multi, true)?;
                r.end()?;
                ParsedOp::Inventory { cmd: TagCommand { multi, option, metadata, sel }, flags, timeout }
            }
            0x28 => {
                let _timeout = r.u16()?;
                let (multi, option, metadata) = self.tag_header(r, true)?;
                let bank = r.u8()?;
                let address = r.u32()? as usize;
                let count = usize::from(r.u8()?);
                let sel = r.selection(option, multi, true)?;
                r.end()?;
                ParsedOp::Read { cmd: TagCommand { multi, option, metadata, sel }, bank, address, count }
            }
            0x24 => {
                let _timeout = r.u16()?;
                let (multi, option, metadata) = self.tag_header(r, false)?;
                let address = r.u32()? as usize;
                let bank = r.u8()?;
                let sel = r.selection(option, multi, true)?;
                let data = r.rest().to_vec();
                if data.is_empty() || data.len() % 2 != 0 {
                    return Err(WRONG_DATA);
                }
                ParsedOp::Write { cmd: TagCommand { multi, option, metadata, sel }, bank, address, data }
            }
            0x23 => {
                let _timeout = r.u16()?;
                let (multi, option, metadata) = self.tag_header(r, false)?;
                let sel = r.selection(option, multi, true)?;
                if option == 0 && r.u8()? != 0 {
                    return Err(INVALID_PARAMETER); // second RFU byte
                }
                let epc = r.rest().to_vec();
                if epc.is_empty() || epc.len() % 2 != 0 || epc.len() > 62 {
                    return Err(WRONG_DATA);
                }
                ParsedOp::WriteEpc { cmd: TagCommand { multi, option, metadata, sel }, epc }
            }
            0x25 => {
                let _timeout = r.u16()?;
                let (multi, option, metadata) = self.tag_header(r, false)?;
                let password = r.u32()?;
                let mask = r.u16()?;
                let action = r.u16()?;
                if mask > 0x03FF || action > 0x03FF {
                    return Err(INVALID_PARAMETER);
                }
                let mut sel = r.selection(option, multi, false)?;
                r.end()?;
                sel.password = password;
                ParsedOp::Lock { cmd: TagCommand { multi, option, metadata, sel }, mask, action }
            }
            0x26 => {
                let _timeout = r.u16()?;
                let (multi, option, metadata) = self.tag_header(r, false)?;
                let password = r.u32()?;
                if r.u8()? != 0 {
                    return Err(INVALID_PARAMETER); // RFU
                }
                let sel = r.selection(option, multi, false)?;
                r.end()?;
                ParsedOp::Kill { cmd: TagCommand { multi, option, metadata, sel }, password }
            }
            _ => return Err(INVALID_OPCODE),
        })
    }

    /// The echo every tag reply starts with: the 0x88 prefix when sent, and the option byte.
    fn echo(cmd: &TagCommand) -> Vec<u8> {
        let mut d = Vec::new();
        if cmd.multi {
            d.push(MULTI_SELECT);
        }
        d.push(cmd.option);
        d
    }

    fn run_tag_op(&mut self, parsed: ParsedOp) -> (u16, Vec<u8>, f64) {
        match parsed {
            ParsedOp::Inventory { cmd, flags, timeout } => {
                let ms = f64::from(timeout);
                self.auto_feed();
                let found: Vec<usize> =
                    self.field_tags().into_iter().filter(|&i| self.tags[i].matches(&cmd.sel)).collect();
                // The tag buffer keeps each tag once until it is cleared; the count is of the tags
                // this search added, which is what the C API adds up over the rounds of a read.
                let mut count = 0;
                for &i in &found {
                    let id = self.tags[i].inventory_id();
                    if !self.buffer.contains(&id) {
                        self.buffer.push(id);
                        count += 1;
                    }
                }
                if self.faults.two_tags && !self.faults.no_tag {
                    count += 1;
                }
                if count == 0 {
                    return (NO_TAGS, Vec::new(), ms);
                }
                let mut d = Self::echo(&cmd);
                d.extend_from_slice(&flags.to_be_bytes());
                if flags & 0x0010 != 0 {
                    d.extend_from_slice(&(count as u32).to_be_bytes());
                } else {
                    d.push(count.min(255) as u8);
                }
                (OK, d, ms)
            }
            ParsedOp::Read { cmd, bank, address, count } => {
                let ms = 10.0 + count as f64;
                let sel = &cmd.sel;
                let Some(i) = self.singulate(sel) else { return (NO_TAGS, Vec::new(), ms) };
                let tag = &self.tags[i];
                let Some(secured) = tag.secured(sel.password) else {
                    return (MEMORY_LOCKED, Vec::new(), ms);
                };
                if bank == 0 {
                    // Reading a read-locked password needs the secured state.
                    let words = address..address + count;
                    let kill_locked = tag.locks.fields[KILL_F].locked && words.start < 2;
                    let access_locked = tag.locks.fields[ACCESS_F].locked && words.end > 2;
                    if (kill_locked || access_locked) && !secured {
                        return (MEMORY_LOCKED, Vec::new(), ms);
                    }
                }
                let Some(mem) = tag.bank(bank) else { return (INVALID_PARAMETER, Vec::new(), ms) };
                let Some(words) = mem.get(address * 2..(address + count) * 2) else {
                    return (MEMORY_OVERRUN, Vec::new(), ms);
                };
                let words = words.to_vec();
                let mut d = Self::echo(&cmd);
                if cmd.option & 0x10 != 0 {
                    d.extend_from_slice(&cmd.metadata.to_be_bytes());
                    d.extend_from_slice(&self.metadata_fields(cmd.metadata));
                }
                d.extend_from_slice(&words);
                (OK, d, ms)
            }
            ParsedOp::Write { cmd, bank, address, data } => {
                let ms = 15.0 * (data.len() / 2).max(1) as f64;
                let Some(i) = self.singulate(&cmd.sel) else { return (NO_TAGS, Vec::new(), ms) };
                if self.faults.write_fail {
                    return (WRITE_FAILED, Vec::new(), ms);
                }
                let status = self.write_bank(i, bank, address, &data, cmd.sel.password);
                if status == OK {
                    let tag = &mut self.tags[i];
                    if bank == 3 {
                        tag.user_written = tag.user_written.max(address * 2 + data.len());
                    }
                    let op = ["passwords", "epc", "tid", "user"].get(usize::from(bank)).unwrap_or(&"bank");
                    self.ledger.push(tag.written(op));
                }
                (status, Vec::new(), ms)
            }
            ParsedOp::WriteEpc { cmd, epc } => {
                let ms = 15.0 * (epc.len() / 2 + 1) as f64;
                let Some(i) = self.singulate(&cmd.sel) else { return (NO_TAGS, Vec::new(), ms) };
                if self.faults.write_fail {
                    return (WRITE_FAILED, Vec::new(), ms);
                }
                let tag = &mut self.tags[i];
                let Some(secured) = tag.secured(cmd.sel.password) else {
                    return (MEMORY_LOCKED, Vec::new(), ms);
                };
                if !writable(tag.locks.fields[EPC_F], secured) {
                    return (MEMORY_LOCKED, Vec::new(), ms);
                }
                tag.set_epc(&epc);
                self.ledger.push(tag.written("epc"));
                (OK, Vec::new(), ms)
            }
            ParsedOp::Lock { cmd, mask, action } => {
                let ms = 15.0;
                let password = cmd.sel.password;
                let Some(i) = self.singulate(&cmd.sel) else { return (NO_TAGS, Vec::new(), ms) };
                if self.faults.lock_fail {
                    return (NON_SPECIFIC, Vec::new(), ms);
                }
                let tag = &mut self.tags[i];
                if tag.secured(password) != Some(true) {
                    return (MEMORY_LOCKED, Vec::new(), ms);
                }
                let mut next = tag.locks.clone();
                for (f, field) in next.fields.iter_mut().enumerate() {
                    let (lock_bit, perm_bit) = (1u16 << (2 * f + 1), 1u16 << (2 * f));
                    let old = *field;
                    if mask & lock_bit != 0 {
                        field.locked = action & lock_bit != 0;
                    }
                    if mask & perm_bit != 0 {
                        field.perma = action & perm_bit != 0 || old.perma;
                    }
                    if old.perma && field.locked != old.locked {
                        return (MEMORY_LOCKED, Vec::new(), ms);
                    }
                }
                tag.locks = next;
                tag.sealed = true;
                self.spent = true;
                self.ledger.push(tag.written("lock"));
                (OK, Vec::new(), ms)
            }
            ParsedOp::Kill { cmd, password } => {
                let ms = 20.0;
                let Some(i) = self.singulate(&cmd.sel) else { return (NO_TAGS, Vec::new(), ms) };
                let own = self.tags[i].kill_password();
                if own == 0 || own != password {
                    return (KILL_PASSWORD, Vec::new(), ms);
                }
                let tag = self.tags.remove(i);
                self.killed += 1;
                self.spent = true;
                self.ledger.push(Event::TagKilled { tid: hex::encode_upper(&tag.tid) });
                (OK, Vec::new(), ms)
            }
        }
    }

    fn write_bank(&mut self, i: usize, bank: u8, address: usize, data: &[u8], password: u32) -> u16 {
        let tag = &mut self.tags[i];
        let Some(secured) = tag.secured(password) else { return MEMORY_LOCKED };
        let words = address..address + data.len() / 2;
        let allowed = match bank {
            0 => {
                (words.start >= 2 || writable(tag.locks.fields[KILL_F], secured))
                    && (words.end <= 2 || writable(tag.locks.fields[ACCESS_F], secured))
            }
            1 => writable(tag.locks.fields[EPC_F], secured),
            2 => writable(tag.locks.fields[TID_F], secured),
            3 => writable(tag.locks.fields[USER_F], secured),
            _ => return INVALID_PARAMETER,
        };
        if !allowed {
            return MEMORY_LOCKED;
        }
        let mem: &mut [u8] = match bank {
            0 => &mut tag.reserved[..],
            1 => &mut tag.epc_bank,
            2 => &mut tag.tid,
            _ => &mut tag.user,
        };
        let Some(target) = mem.get_mut(address * 2..address * 2 + data.len()) else { return MEMORY_OVERRUN };
        target.copy_from_slice(data);
        if bank == 1 && address >= 1 {
            tag.update_crc();
        }
        OK
    }

    /// Extracts complete frames from the receive buffer (own scanner: header, length, body, CRC).
    fn frames(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            let Some(start) = self.rx.iter().position(|b| *b == 0xFF) else {
                self.rx.clear();
                break;
            };
            self.rx.drain(..start);
            if self.rx.len() < 2 {
                break;
            }
            let need = usize::from(self.rx[1]) + 5;
            if self.rx.len() < need {
                break;
            }
            let body = &self.rx[1..need - 2];
            let crc = u16::from_be_bytes([self.rx[need - 2], self.rx[need - 1]]);
            if sim_crc(body) == crc {
                out.push((self.rx[2], self.rx[3..need - 2].to_vec()));
                self.rx.drain(..need);
            } else {
                self.bad_frames += 1;
                self.rx.drain(..1);
            }
        }
        out
    }
}

fn writable(lock: FieldLock, secured: bool) -> bool {
    match (lock.locked, lock.perma) {
        (false, _) => true,
        (true, false) => secured,
        (true, true) => false,
    }
}

impl Default for MercurySim {
    fn default() -> Self {
        MercurySim::new()
    }
}

impl SimDevice for MercurySim {
    fn name(&self) -> &'static str {
        "rfid"
    }

    fn receive(&mut self, bytes: &[u8], _now: Instant) -> Vec<SimOut> {
        if self.faults.mute {
            return Vec::new();
        }
        self.rx.extend_from_slice(bytes);
        let mut outs = Vec::new();
        for (op, data) in self.frames() {
            let (status, reply, ms) = self.handle(op, &data);
            if let Some(w) = self.wait(ms) {
                outs.push(w);
            }
            let mut frame = response_frame(op, status, &reply);
            if self.faults.corrupt_next {
                self.faults.corrupt_next = false;
                if let Some(last) = frame.last_mut() {
                    *last ^= 0x01;
                }
            }
            if self.faults.garbage {
                // Noise with a false header claiming 64 bytes, then a corrupted copy.
                let mut noise = vec![0x00, 0x13, 0xFF, 0x40, 0x7E];
                let mut bad = frame.clone();
                if let Some(last) = bad.last_mut() {
                    *last ^= 0x5A;
                }
                noise.extend_from_slice(&bad);
                outs.push(SimOut::Send(noise));
            }
            outs.push(SimOut::Send(frame));
        }
        outs
    }

    fn apply_fault(&mut self, fault: &str) -> Result<(), String> {
        match fault {
            "no_tag" => self.faults.no_tag = true,
            "two_tags" => self.faults.two_tags = true,
            "write_fail" => self.faults.write_fail = true,
            "lock_fail" => self.faults.lock_fail = true,
            "wrong_region" => self.faults.wrong_region = true,
            "garbage" => self.faults.garbage = true,
            "mute" => self.faults.mute = true,
            "corrupt_next" => self.faults.corrupt_next = true,
            other => return Err(format!("rfid: unknown fault {other:?}; known: {}", FAULTS.join(", "))),
        }
        Ok(())
    }

    fn clear_faults(&mut self) {
        self.faults = Faults::default();
    }

    fn take_ledger(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.ledger)
    }

    /// A half-received frame is dropped.
    fn host_closed(&mut self) {
        self.rx.clear();
    }

    fn control(&mut self, words: &[&str]) -> Result<serde_json::Value, String> {
        match words {
            ["next"] => Ok(serde_json::json!({"ok": true, "tid": hex::encode_upper(self.feed_next())})),
            _ => Err(format!("rfid: no verb {:?} (known: tag next)", words.join(" "))),
        }
    }

    fn status(&self) -> serde_json::Value {
        let f = &self.faults;
        let active: Vec<&str> = [
            (f.no_tag, "no_tag"),
            (f.two_tags, "two_tags"),
            (f.write_fail, "write_fail"),
            (f.lock_fail, "lock_fail"),
            (f.wrong_region, "wrong_region"),
            (f.garbage, "garbage"),
            (f.mute, "mute"),
            (f.corrupt_next, "corrupt_next"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        serde_json::json!({
            "program": if self.in_app { "application" } else { "bootloader" },
            "region": self.region,
            "protocol": self.protocol,
            "read_power_cdbm": self.read_power,
            "write_power_cdbm": self.write_power,
            "commands": self.commands,
            "bad_frames": self.bad_frames,
            "killed": self.killed,
            "roll": {"seed": self.roll_seed, "fed": self.fed, "auto_feed": self.auto_feed},
            "faults": active,
            "tags": self.tags.iter().map(SimTag::status_json).collect::<Vec<_>>(),
        })
    }
}

/// Builds the simulator from its scenario options (`[rfid]` table of a `hw/sim/*.toml` file).
pub fn simulator(options: &toml::Table) -> Result<Box<dyn SimDevice>, String> {
    Ok(Box::new(MercurySim::from_options(options)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    fn send(sim: &mut MercurySim, frame: &[u8]) -> Vec<u8> {
        sim.receive(frame, Instant::now())
            .into_iter()
            .filter_map(|o| match o {
                SimOut::Send(b) => Some(b),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn crc_identity_reproduces_verified_vectors() {
        assert_eq!(sim_crc(&[0x00, 0x03]), 0x1D0C);
        assert_eq!(sim_crc(&[0x00, 0x04]), 0x1D0B);
        assert_eq!(sim_crc(&[0x01, 0x97, 0x01]), 0x4BBC);
        assert_eq!(sim_crc(&[0x01, 0x97, 0x02]), 0x4BBF);
        // A Read Tag ID Multiple frame captured from Universal Reader Assistant.
        assert_eq!(sim_crc(&hex("08 22 88 10 0013 03E8 0057")), 0x1FDF);
    }

    #[test]
    fn boots_from_bootloader_on_verified_frames() {
        let mut sim = MercurySim::new();
        // Set region 2 in the bootloader: the application opcode is unknown there.
        let reply = send(&mut sim, &hex("FF 01 97 02 4B BF"));
        assert_eq!(&reply[..5], &[0xFF, 0x00, 0x97, 0x01, 0x01]);
        // Get version answers 20 bytes.
        let reply = send(&mut sim, &hex("FF 00 03 1D 0C"));
        assert_eq!(&reply[..5], &[0xFF, 20, 0x03, 0x00, 0x00]);
        assert_eq!(reply.len(), 27);
        assert_eq!(sim_crc(&reply[1..25]), u16::from_be_bytes([reply[25], reply[26]]));
        // Boot firmware: OK, then again: invalid opcode (already in the application).
        let reply = send(&mut sim, &hex("FF 00 04 1D 0B"));
        assert_eq!(&reply[..5], &[0xFF, 20, 0x04, 0x00, 0x00]);
        let reply = send(&mut sim, &hex("FF 00 04 1D 0B"));
        assert_eq!(&reply[..5], &[0xFF, 0x00, 0x04, 0x01, 0x01]);
        // Set region 1 now succeeds.
        let reply = send(&mut sim, &hex("FF 01 97 01 4B BC"));
        assert_eq!(&reply[..5], &[0xFF, 0x00, 0x97, 0x00, 0x00]);
        assert_eq!(sim.status()["region"], 1);
    }

    #[test]
    fn bad_crc_is_ignored_and_garbage_skipped() {
        let mut sim = MercurySim::new();
        let reply = send(&mut sim, &hex("00 12 FF 00 03 1D 0D"));
        assert!(reply.is_empty());
        let reply = send(&mut sim, &hex("33 FF 00 03 1D 0C"));
        assert_eq!(reply[2], 0x03);
        assert_eq!(sim.status()["bad_frames"], 1);
    }

    /// A host frame built by hand (layouts from serial_reader_l3.c), CRC from the verified identity.
    fn cmd(op: u8, data: &str) -> Vec<u8> {
        let data = hex(data);
        let mut f = vec![0xFF, data.len() as u8, op];
        f.extend_from_slice(&data);
        let crc = sim_crc(&f[1..]);
        f.extend_from_slice(&crc.to_be_bytes());
        f
    }

    fn status_of(reply: &[u8]) -> u16 {
        u16::from_be_bytes([reply[3], reply[4]])
    }

    #[test]
    fn gen2_rules_on_hand_built_frames() {
        let options: toml::Table = r#"
            timing_scale = 0
            start = "app"
            [[tags]]
            tid = "E2801170200000000000AAAA"
            access_password = "12345678"
            locked = ["user"]
        "#
        .parse()
        .unwrap();
        let mut sim = MercurySim::from_options(&options).unwrap();
        // Tag operations need a region first.
        assert_eq!(status_of(&send(&mut sim, &cmd(0x22, "00 0000 0064"))), AFE_NOT_ON);
        send(&mut sim, &hex("FF 01 97 01 4B BC"));
        send(&mut sim, &cmd(0x93, "0005"));
        // Inventory: one tag (option, search flags, count).
        let reply = send(&mut sim, &cmd(0x22, "00 0000 0064"));
        assert_eq!(&reply[1..9], &hex("04 22 0000 00 0000 01")[..]);
        // Read the TID (bank 2, word 0, 6 words): option echoed, then the words.
        let reply = send(&mut sim, &cmd(0x28, "03E8 00 02 00000000 06"));
        assert_eq!(status_of(&reply), OK);
        assert_eq!(&reply[5..18], &hex("00 E2801170200000000000AAAA")[..]);
        // Write user word 0, select on TID (option 2), no password: memory locked.
        let sel = "00000000 60 E2801170200000000000AAAA";
        let reply = send(&mut sim, &cmd(0x24, &format!("03E8 02 00000000 03 00000000 {sel} BEEF")));
        assert_eq!(status_of(&reply), MEMORY_LOCKED);
        // Wrong password: refused as well.
        let reply = send(&mut sim, &cmd(0x24, &format!("03E8 02 00000000 03 11111111 {sel} BEEF")));
        assert_eq!(status_of(&reply), MEMORY_LOCKED);
        // Right password: written.
        let reply = send(&mut sim, &cmd(0x24, &format!("03E8 02 00000000 03 12345678 {sel} BEEF")));
        assert_eq!(status_of(&reply), OK);
        assert!(sim.status()["tags"][0]["user"].as_str().unwrap().starts_with("BEEF"));
        // A select that matches no tag: no tag found.
        let reply = send(&mut sim, &cmd(0x24, "03E8 02 00000000 03 12345678 00000000 08 E3 BEEF"));
        assert_eq!(status_of(&reply), NO_TAGS);
        // Write EPC without select: option 0 and an RFU byte; PC length bits follow the EPC.
        let reply = send(&mut sim, &cmd(0x23, "03E8 05 12345678 11112222"));
        assert_eq!(status_of(&reply), OK);
        assert_eq!(sim.status()["tags"][0]["pc"], "1000");
        // Permalock the user bank (mask = action = USER | USER_PERM), then no write is allowed.
        let reply = send(&mut sim, &cmd(0x25, &format!("03E8 02 12345678 0003 0003 {sel}")));
        assert_eq!(status_of(&reply), OK);
        let reply = send(&mut sim, &cmd(0x24, &format!("03E8 02 00000000 03 12345678 {sel} 0001")));
        assert_eq!(status_of(&reply), MEMORY_LOCKED);
        // Unknown opcode and wrong data length.
        assert_eq!(status_of(&send(&mut sim, &cmd(0x55, ""))), INVALID_OPCODE);
        assert_eq!(status_of(&send(&mut sim, &cmd(0x97, ""))), WRONG_DATA);
    }

    #[test]
    fn faults_are_named() {
        let mut sim = MercurySim::new();
        for f in FAULTS {
            sim.apply_fault(f).unwrap();
        }
        assert!(sim.apply_fault("fire").unwrap_err().contains("no_tag"));
        sim.clear_faults();
        assert_eq!(sim.status()["faults"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn options_build_tags() {
        let t: toml::Table = r#"
            timing_scale = 0
            start = "app"
            [[tags]]
            tid = "E2801170200000000000AAAA"
            access_password = "12345678"
            locked = ["epc", "access"]
        "#
        .parse()
        .unwrap();
        let sim = MercurySim::from_options(&t).unwrap();
        let st = sim.status();
        assert_eq!(st["program"], "application");
        assert_eq!(st["tags"][0]["access_password_set"], true);
        assert_eq!(st["tags"][0]["locks"]["epc"], "locked");
        assert!(!st.to_string().contains("12345678"));
        let bad: toml::Table = "colour = 1".parse().unwrap();
        assert!(MercurySim::from_options(&bad).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_and_commands_never_panic(
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            op in proptest::prelude::any::<u8>(),
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..60),
        ) {
            let _ = MercurySim::new().receive(&noise, Instant::now());
            let mut sim = MercurySim::new();
            let _ = send(&mut sim, &hex("FF 00 04 1D 0B"));
            let _ = send(&mut sim, &hex("FF 01 97 08 4B B5"));
            let mut frame = vec![0xFF, data.len() as u8, op];
            frame.extend_from_slice(&data);
            let crc = sim_crc(&frame[1..]);
            frame.extend_from_slice(&crc.to_be_bytes());
            let reply = send(&mut sim, &frame);
            // Every well-formed command gets exactly one well-formed answer with its opcode.
            proptest::prop_assert!(reply.len() >= 7);
            proptest::prop_assert_eq!(reply[2], op);
        }
    }

    /// A simulator in its application with region EU3 and Gen2 set, no waits.
    fn ready_sim() -> MercurySim {
        let mut sim =
            MercurySim::from_options(&"timing_scale = 0\nstart = \"app\"".parse().unwrap()).unwrap();
        assert_eq!(status_of(&send(&mut sim, &hex("FF 01 97 08 4B B5"))), OK);
        assert_eq!(status_of(&send(&mut sim, &cmd(0x93, "0005"))), OK);
        sim
    }

    #[test]
    fn the_roll_gives_distinct_gen2_tids_from_its_seed() {
        let mut sim = MercurySim::new();
        assert_eq!(sim.status()["tags"][0]["tid"], "E28011702000000000000001", "seed 1: serial 1 first");
        let mut seen = std::collections::BTreeSet::new();
        seen.insert(sim.tags[0].tid.clone());
        for _ in 0..2000 {
            let t = sim.next_blank();
            assert_eq!(t.tid[..6], ROLL_TID_PREFIX);
            assert_eq!(t.tid.len(), 12);
            assert_eq!(t.tid[6..], t.epc_bank[4 + 6..4 + 12], "EPC ends in the TID's serial");
            assert!(seen.insert(t.tid), "a TID came twice");
        }
        let seeded = |seed: u64| {
            let text = format!("timing_scale = 0\nroll_seed = {seed}");
            let mut s = MercurySim::from_options(&text.parse().unwrap()).unwrap();
            let first = s.tags[0].tid.clone();
            (first, s.next_blank().tid)
        };
        assert_eq!(seeded(77), seeded(77), "the same seed gives the same roll");
        assert_ne!(seeded(77).0, seeded(78).0);
        assert_eq!(hex::encode_upper(seeded(0x1234).0), "E28011702000000000001234");
        assert!(MercurySim::from_options(&"roll_seed = -1".parse().unwrap()).is_err());
        assert!(MercurySim::from_options(&"auto_feed = 1".parse().unwrap()).is_err());
    }

    #[test]
    fn tag_next_places_a_fresh_blank_and_auto_feed_replaces_a_finished_one() {
        let mut sim = ready_sim();
        let first = sim.status()["tags"][0]["tid"].clone();
        let next = sim.control(&["next"]).unwrap();
        assert_ne!(next["tid"], first);
        assert_eq!(sim.status()["tags"].as_array().unwrap().len(), 1);
        assert_eq!(sim.status()["tags"][0]["tid"], next["tid"]);
        assert!(sim.control(&["later"]).unwrap_err().contains("tag next"));

        // The API's inventory frame (multi-select prefix, metadata, 200 ms).
        let inventory = cmd(0x22, "88 10 0013 00C8 0FFF");
        assert_eq!(status_of(&send(&mut sim, &inventory)), OK);
        assert_eq!(sim.status()["tags"][0]["tid"], next["tid"], "an unfinished tag stays");
        // Locked here: the next search finds a fresh blank instead.
        sim.tags[0].sealed = true;
        sim.spent = true;
        assert_eq!(status_of(&send(&mut sim, &inventory)), OK);
        let third = sim.status()["tags"][0]["tid"].clone();
        assert!(third != next["tid"] && third != first, "{third}");
        assert_eq!(sim.status()["roll"]["fed"], 3);

        // auto_feed = false: the finished tag stays.
        let mut fixed =
            MercurySim::from_options(&"timing_scale = 0\nauto_feed = false".parse().unwrap()).unwrap();
        fixed.tags[0].sealed = true;
        fixed.spent = true;
        fixed.auto_feed();
        assert_eq!(fixed.status()["tags"][0]["tid"], "E28011702000000000000001");
    }

    #[test]
    fn writes_locks_and_kills_reach_the_ledger() {
        let mut sim = ready_sim();
        let epc = "3034257BF400B7800004CB2F";
        assert_eq!(status_of(&send(&mut sim, &cmd(0x23, &format!("03E8 88 00 00 {epc}")))), OK);
        let got = sim.take_ledger();
        assert_eq!(
            got,
            vec![Event::TagWritten {
                tid: "E28011702000000000000001".into(),
                epc: epc.into(),
                locked: false,
                user_bytes: 0,
                op: "epc".into(),
            }]
        );
        assert!(sim.take_ledger().is_empty(), "taken once");
        // A refused write is not in the ledger.
        sim.apply_fault("write_fail").unwrap();
        assert_ne!(status_of(&send(&mut sim, &cmd(0x23, &format!("03E8 88 00 00 {epc}")))), OK);
        assert!(sim.take_ledger().is_empty());
    }

    #[test]
    fn write_epc_forms_of_the_api_are_parsed_as_meant() {
        // `23 03E8 88 00 00 <EPC>` (multi-select prefix, option 0, RFU) was read with 0x88 as
        // the option byte and stored a 14-byte EPC.
        let mut sim = ready_sim();
        let epc = "3034257BF400B7800004CB2F";
        assert_eq!(status_of(&send(&mut sim, &cmd(0x23, &format!("03E8 88 00 00 {epc}")))), OK);
        assert_eq!(sim.status()["tags"][0]["epc"], epc);
        assert_eq!(sim.status()["tags"][0]["pc"], "3000");
        // An EPC filter (option 1) has no bit address: password, bit length, EPC. It was read as
        // if it had a 4-byte address and stored a 10-word EPC (PC 5000).
        let new = "3034257BF400B7800004CB30";
        let filtered = format!("03E8 01 00000000 60 {epc} {new}");
        assert_eq!(status_of(&send(&mut sim, &cmd(0x23, &filtered))), OK);
        assert_eq!(sim.status()["tags"][0]["epc"], new);
        assert_eq!(sim.status()["tags"][0]["pc"], "3000");
        // The old EPC no longer matches: no tag, nothing written.
        assert_eq!(status_of(&send(&mut sim, &cmd(0x23, &filtered))), NO_TAGS);
        assert_eq!(sim.status()["tags"][0]["epc"], new);
    }

    #[test]
    fn select_trailer_and_prefix_are_checked() {
        let mut sim = ready_sim();
        let tid = "E28011702000000000000001";
        let read = |trailer: &str| {
            cmd(0x28, &format!("03E8 88 12 00C0 02 00000000 02 00000000 00000000 60 {tid} {trailer}"))
        };
        let reply = send(&mut sim, &read("040000"));
        assert_eq!(status_of(&reply), OK);
        // Echo: prefix, option, metadata flags, protocol, empty data field, then the words.
        assert_eq!(&reply[5..reply.len() - 2], &hex("88 12 00C0 05 0000 E2801170")[..]);
        // Missing trailer, a chained select, another target, another prefix: refused.
        assert_eq!(status_of(&send(&mut sim, &read(""))), WRONG_DATA);
        assert_eq!(status_of(&send(&mut sim, &read("040002"))), INVALID_PARAMETER);
        assert_eq!(status_of(&send(&mut sim, &read("000000"))), INVALID_PARAMETER);
        let bap = cmd(0x28, &format!("03E8 81 12 00C0 02 00000000 02 00000000 00000000 60 {tid} 040000"));
        assert_eq!(status_of(&send(&mut sim, &bap)), INVALID_PARAMETER);
        // Unknown opcode with data: invalid opcode, not "wrong number of data".
        assert_eq!(status_of(&send(&mut sim, &cmd(0x55, "0102"))), INVALID_OPCODE);
        // Known opcode, wrong length: wrong number of data.
        assert_eq!(status_of(&send(&mut sim, &cmd(0x68, "00"))), WRONG_DATA);
    }

    #[test]
    fn firmware_before_multi_select_refuses_the_prefix() {
        let options = "timing_scale = 0\nstart = \"app\"\nfirmware = \"01.09.00.0C\"";
        let mut sim = MercurySim::from_options(&options.parse().unwrap()).unwrap();
        send(&mut sim, &hex("FF 01 97 08 4B B5"));
        send(&mut sim, &cmd(0x93, "0005"));
        let reply = send(&mut sim, &hex("FF 00 03 1D 0C"));
        assert_eq!(&reply[17..21], &[0x01, 0x09, 0x00, 0x0C]);
        assert_eq!(status_of(&send(&mut sim, &cmd(0x22, "88 10 0013 0000 0FFF"))), INVALID_PARAMETER);
        assert_eq!(status_of(&send(&mut sim, &cmd(0x22, "10 0013 0000 0FFF"))), OK);
        let bad = "timing_scale = 0\nfirmware = \"1.9\"";
        let err = MercurySim::from_options(&bad.parse().unwrap()).err().unwrap();
        assert!(err.contains("firmware"), "{err}");
    }

    /// Host frames the Mercury C API 1.35.1.43 sent to this simulator (see the data file's header).
    fn api_host_frames() -> Vec<(u8, Vec<u8>)> {
        include_str!("../../tests/data/mercury/api-1.35.1.43-frames.txt")
            .lines()
            .filter_map(|l| l.strip_prefix("> "))
            .map(|h| {
                let f = hex(h);
                (f[2], f[3..f.len() - 2].to_vec())
            })
            .collect()
    }

    /// Data lengths each fixed-layout opcode accepts (layouts of serial_reader_l3.c).
    fn accepted_lengths(op: u8) -> Option<&'static [usize]> {
        Some(match op {
            0x03 | 0x0C | 0x68 | 0x70 | 0x71 | 0x67 | 0x2A => &[0],
            0x06 => &[4],
            0x98 | 0x97 | 0x62 | 0x64 => &[1],
            0x6A | 0x93 | 0x92 | 0x94 => &[2],
            0x63 | 0x61 => &[0, 1],
            0x6C => &[2, 3],
            0x29 => &[0, 3],
            _ => return None,
        })
    }

    fn framed(op: u8, data: &[u8]) -> Vec<u8> {
        let mut f = vec![0xFF, data.len() as u8, op];
        f.extend_from_slice(data);
        let crc = sim_crc(&f[1..]);
        f.extend_from_slice(&crc.to_be_bytes());
        f
    }

    proptest::proptest! {
        /// No input that the simulator did not fully parse gets a success answer: random bytes,
        /// unknown opcodes, known opcodes with a wrong data length, and the API's own tag frames
        /// truncated, extended, with a foreign prefix or an odd data tail.
        #[test]
        fn nothing_unparsed_is_answered_with_success(
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            op in proptest::prelude::any::<u8>(),
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            pick in proptest::prelude::any::<usize>(),
            kind in 0u8..4,
            cut in proptest::prelude::any::<usize>(),
            prefix in 0x80u8..=0xFF,
            extra in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..8),
        ) {
            let success = |reply: &[u8]| reply.windows(5).any(|w| w[0] == 0xFF && w[3] == 0 && w[4] == 0);
            // Random bytes: nothing with a valid CRC, so no answer at all, let alone success.
            let mut sim = ready_sim();
            proptest::prop_assert!(!success(&send(&mut sim, &noise)));
            // Unknown opcodes and wrong lengths.
            let mut sim = ready_sim();
            let reply = send(&mut sim, &framed(op, &data));
            if !APP_OPCODES.contains(&op) {
                proptest::prop_assert_eq!(status_of(&reply), INVALID_OPCODE);
            } else if let Some(lengths) = accepted_lengths(op) {
                if !lengths.contains(&data.len()) {
                    proptest::prop_assert_eq!(status_of(&reply), WRONG_DATA);
                }
            }
            // Mutated API tag frames.
            let tag_frames: Vec<(u8, Vec<u8>)> = api_host_frames()
                .into_iter()
                .filter(|(op, _)| matches!(op, 0x22 | 0x23 | 0x24 | 0x25 | 0x26 | 0x28))
                .collect();
            let (op, d) = &tag_frames[pick % tag_frames.len()];
            // The variable tail: the EPC of Write Tag ID, the words of Write Tag Data.
            let tail = match op { 0x23 => 12, 0x24 => 4, _ => 0 };
            let fixed = d.len() - tail;
            let prefix_at = if *op == 0x22 { 0 } else { 2 };
            let mutated = match kind {
                0 => d[..cut % fixed].to_vec(),
                1 if tail == 0 => [d.clone(), extra].concat(),
                1 => [d.clone(), vec![extra[0]]].concat(),
                _ if d[prefix_at] == 0x88 && prefix != 0x88 => {
                    let mut m = d.clone();
                    m[prefix_at] = prefix;
                    m
                }
                _ => return Ok(()),
            };
            let mut sim = ready_sim();
            let reply = send(&mut sim, &framed(*op, &mutated));
            proptest::prop_assert_eq!(reply[2], *op);
            proptest::prop_assert_ne!(status_of(&reply), OK, "{:02X} {}", op, hex::encode_upper(&mutated));
        }
    }

    #[test]
    fn timing_produces_waits_only_when_scaled() {
        let mut sim = MercurySim::from_options(&"timing_scale = 0".parse().unwrap()).unwrap();
        let outs = sim.receive(&hex("FF 00 04 1D 0B"), Instant::now());
        assert!(outs.iter().all(|o| matches!(o, SimOut::Send(_))));
        let mut sim = MercurySim::new();
        let outs = sim.receive(&hex("FF 00 04 1D 0B"), Instant::now());
        assert!(matches!(outs[0], SimOut::Wait(d) if d == Duration::from_millis(250)));
    }
}
