//! ThingMagic Mercury serial protocol (UHF EPC Gen2): codec and driver.
