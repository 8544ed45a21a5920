//! ZPL II sticker printer: label jobs, `~HS` host status, RFID label encoding, driver.
