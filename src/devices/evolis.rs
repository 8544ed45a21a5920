//! Evolis card printer command protocol: codec, job builder and driver.
