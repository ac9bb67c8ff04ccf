//! redis-ha on Kubernetes: `render` turns [`options::RenderOptions`] into the
//! manifests of `deploy/kubernetes/`; `apply`, `delete`, `status`, `bench`
//! and `drill` drive a cluster through kube-rs. The cluster-facing code is
//! in [`cluster`] and stays thin; every decision is a pure function in
//! [`plan`], [`ready`], [`roles`] or [`results`].

pub mod cli;
pub mod cluster;
pub mod options;
pub mod plan;
pub mod ready;
pub mod render;
pub mod results;
pub mod roles;
