//! GPIO: named lines from config, rppal on a Raspberry Pi, a simulated backend elsewhere.
