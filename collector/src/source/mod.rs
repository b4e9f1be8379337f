//! Where batches come from besides `POST /api/v1/events`: [`nats`], a
//! JetStream consumer shared by any number of collectors.

pub mod nats;
