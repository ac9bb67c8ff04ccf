//! When an object counts as ready, from its status alone.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not yet; says how far it is.
    Waiting(String),
    /// Will not get ready by waiting; says why.
    Failed(String),
}

/// Ready when every replica is ready and on the current revision, and the
/// controller has seen the latest spec.
pub fn stateful_set(s: &StatefulSet) -> Readiness {
    let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(st) = &s.status else {
        return Readiness::Waiting("no status yet".into());
    };
    let ready = st.ready_replicas.unwrap_or(0);
    let observed = st.observed_generation.unwrap_or(0) >= s.metadata.generation.unwrap_or(0);
    let same_revision = st.current_revision.is_some() && st.current_revision == st.update_revision;
    if observed && ready == want && st.replicas == want && same_revision {
        Readiness::Ready
    } else if !same_revision {
        Readiness::Waiting(format!("{ready}/{want} ready, rolling out a new revision"))
    } else {
        Readiness::Waiting(format!("{ready}/{want} ready"))
    }
}

/// Ready when every replica is updated and available, nothing older is
/// left, and the controller has seen the latest spec.
pub fn deployment(d: &Deployment) -> Readiness {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(st) = &d.status else {
        return Readiness::Waiting("no status yet".into());
    };
    let observed = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    let total = st.replicas.unwrap_or(0);
    if observed && updated == want && available == want && total == want {
        Readiness::Ready
    } else {
        Readiness::Waiting(format!("{available}/{want} available, {updated} updated"))
    }
}

/// A Job is done when it has its completions, failed when a Failed
/// condition is set or more pods failed than its backoff limit allows.
pub fn job(j: &Job) -> Readiness {
    let spec = j.spec.as_ref();
    let want = spec.and_then(|s| s.completions).unwrap_or(1);
    let backoff = spec.and_then(|s| s.backoff_limit).unwrap_or(6);
    let Some(st) = &j.status else {
        return Readiness::Waiting("not started".into());
    };
    let failed_condition = st
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Failed" || c.type_ == "FailureTarget") && c.status == "True");
    let failed = st.failed.unwrap_or(0);
    let succeeded = st.succeeded.unwrap_or(0);
    if let Some(c) = failed_condition {
        let why = c.message.clone().or(c.reason.clone()).unwrap_or_default();
        return Readiness::Failed(format!("Job failed: {why}"));
    }
    if failed > backoff {
        return Readiness::Failed(format!("{failed} pods failed (backoff limit {backoff})"));
    }
    if succeeded >= want {
        return Readiness::Ready;
    }
    let active = st.active.unwrap_or(0);
    Readiness::Waiting(format!(
        "{succeeded}/{want} done, {active} running, {failed} failed"
    ))
}

/// The keys the `--tls-secret` Secret must hold (cert-manager's names).
pub const TLS_KEYS: [&str; 3] = ["tls.crt", "tls.key", "ca.crt"];

/// Whether the `--tls-secret` Secret is there with its three keys; missing,
/// it is only waited for when cert-manager (`issued`) is to write it.
pub fn tls_secret(s: Option<&Secret>, issued: bool) -> Readiness {
    let Some(s) = s else {
        return match issued {
            true => Readiness::Waiting("cert-manager has not written it yet".into()),
            false => Readiness::Failed(
                "it does not exist: create it (tls.crt, tls.key, ca.crt) or render with --cert-manager-issuer".into(),
            ),
        };
    };
    let has = |k: &str| s.data.as_ref().is_some_and(|d| d.contains_key(k));
    let missing: Vec<&str> = TLS_KEYS.into_iter().filter(|k| !has(k)).collect();
    match missing.is_empty() {
        true => Readiness::Ready,
        false => Readiness::Failed(format!("it lacks {}", missing.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStatus, StatefulSetSpec, StatefulSetStatus,
    };
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};

    fn sts(ready: i32, current: &str, update: &str) -> StatefulSet {
        StatefulSet {
            metadata: Default::default(),
            spec: Some(StatefulSetSpec {
                replicas: Some(3),
                ..Default::default()
            }),
            status: Some(StatefulSetStatus {
                replicas: 3,
                ready_replicas: Some(ready),
                current_revision: Some(current.into()),
                update_revision: Some(update.into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn stateful_set_needs_all_ready_on_one_revision() {
        assert_eq!(stateful_set(&sts(3, "a", "a")), Readiness::Ready);
        assert_eq!(
            stateful_set(&sts(2, "a", "a")),
            Readiness::Waiting("2/3 ready".into())
        );
        assert!(
            matches!(stateful_set(&sts(3, "a", "b")), Readiness::Waiting(m) if m.contains("revision"))
        );
        let mut stale = sts(3, "a", "a");
        stale.metadata.generation = Some(2);
        assert!(matches!(stateful_set(&stale), Readiness::Waiting(_)));
    }

    #[test]
    fn deployment_needs_all_updated_and_available() {
        let d = |updated, available, total| Deployment {
            metadata: Default::default(),
            spec: Some(DeploymentSpec {
                replicas: Some(2),
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                updated_replicas: Some(updated),
                available_replicas: Some(available),
                replicas: Some(total),
                ..Default::default()
            }),
        };
        assert_eq!(deployment(&d(2, 2, 2)), Readiness::Ready);
        assert!(matches!(deployment(&d(1, 2, 3)), Readiness::Waiting(_)));
        assert!(matches!(deployment(&d(2, 1, 2)), Readiness::Waiting(_)));
    }

    fn job_with(succeeded: i32, failed: i32, condition: Option<&str>) -> Job {
        Job {
            metadata: Default::default(),
            spec: Some(JobSpec {
                completions: Some(4),
                backoff_limit: Some(0),
                ..Default::default()
            }),
            status: Some(JobStatus {
                succeeded: Some(succeeded),
                failed: Some(failed),
                conditions: condition.map(|t| {
                    vec![JobCondition {
                        type_: t.into(),
                        status: "True".into(),
                        reason: Some("BackoffLimitExceeded".into()),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn job_is_done_failed_or_waiting() {
        assert_eq!(job(&job_with(4, 0, Some("Complete"))), Readiness::Ready);
        assert!(
            matches!(job(&job_with(3, 0, None)), Readiness::Waiting(m) if m.starts_with("3/4"))
        );
        assert!(matches!(job(&job_with(3, 1, None)), Readiness::Failed(_)));
        assert!(
            matches!(job(&job_with(0, 0, Some("Failed"))), Readiness::Failed(m) if m.contains("Backoff"))
        );
    }

    #[test]
    fn the_tls_secret_needs_its_three_keys_and_is_awaited_only_from_cert_manager() {
        use k8s_openapi::ByteString;
        let with = |keys: &[&str]| Secret {
            data: Some(
                keys.iter()
                    .map(|k| (k.to_string(), ByteString(b"pem".to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        assert_eq!(tls_secret(Some(&with(&TLS_KEYS)), false), Readiness::Ready);
        assert!(
            matches!(tls_secret(Some(&with(&["tls.crt", "tls.key"])), true), Readiness::Failed(m) if m == "it lacks ca.crt")
        );
        assert!(matches!(tls_secret(None, true), Readiness::Waiting(_)));
        assert!(
            matches!(tls_secret(None, false), Readiness::Failed(m) if m.contains("--cert-manager-issuer"))
        );
    }
}
