//! End-to-end tests that span crates (sensor → collector → browser), in
//! `tests/`: `delivery` (the sensor's delivery to a real collector over
//! HTTP) and `ui` (a real collector's web UI in a real browser). Nothing
//! here but the tests.
