//! One integration test binary: each module tells one part of the user's story.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with context by design

mod admin_pages;
mod audit;
mod blob_faults;
mod blobs_s3;
mod browser;
mod browser_pages;
mod corpus;
mod crash;
mod deploy;
mod desk;
mod desk_support;
mod duplicates;
mod four_eyes;
mod fuzz_regressions;
mod html;
mod insiders;
mod it_did_not_work;
mod keys_in_service;
mod languages;
mod operations;
mod outages;
mod pages;
mod red_team;
mod reference_device;
mod replica_keys;
mod replicas;
mod response_by_code;
mod second_factor;
mod secrets_at_rest;
pub mod serve_binary;
mod shared_limits;
mod sign_in_guessing;
mod stale_decisions;
mod stitched;
mod support;
mod throttling;
