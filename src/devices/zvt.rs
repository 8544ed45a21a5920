//! ZVT (ECR ↔ terminal) over serial: codec, transaction state machine and driver.
