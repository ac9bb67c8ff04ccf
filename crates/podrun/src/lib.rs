//! Test support, not a product feature: runs the pods of the manifests
//! `redis-ha k8s render` writes in real podman containers, as a kubelet
//! would, without an API server. The rendered YAML is parsed back
//! ([`manifests`]), each pod's environment is resolved as the kubelet does
//! ([`env`]), each container becomes a `podman run` ([`flags`]), and
//! [`cluster`] runs pods on a podman network of its own: StatefulSet pods
//! with stable names and volumes that outlive them, Deployment and Job
//! pods, init containers in order, readiness probes, and deletion with
//! preStop, SIGTERM, the grace period and SIGKILL; [`dns`] answers the pods'
//! and Services' names as the cluster DNS does. [`images`] makes
//! the images (local Debian bases, the redis-ha image from the Dockerfile).

pub mod cluster;
pub mod dns;
pub mod env;
pub mod flags;
pub mod images;
pub mod manifests;
pub mod podman;
pub mod probe;

pub use cluster::{Cluster, JobPod};
pub use manifests::Rendered;
