//! What `apply` and `delete` do, in which order, decided without a cluster:
//! one step per manifest file, with what each step waits for.

use crate::render::{in_kustomization, Manifest, Object};

/// What an apply step waits for before the next one starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wait {
    Nothing,
    StatefulSet(String),
    Deployment(String),
}

#[derive(Clone, Debug)]
pub struct Step {
    pub file: &'static str,
    pub objects: Vec<Object>,
    /// What to wait for once this step's objects are applied (none, or
    /// several: StatefulSets are waited for together, see [`apply_plan`]).
    pub waits: Vec<Wait>,
}

fn wait_for(objects: &[Object]) -> Wait {
    let name = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.name.clone().unwrap_or_default()
    };
    objects
        .iter()
        .find_map(|o| match o {
            Object::StatefulSet(s) => Some(Wait::StatefulSet(name(&s.metadata))),
            Object::Deployment(d) => Some(Wait::Deployment(name(&d.metadata))),
            _ => None,
        })
        .unwrap_or(Wait::Nothing)
}

/// The files `kubectl apply -k` applies, in their numbered order. The
/// StatefulSets are created back to back and waited for together after the
/// last of them: a Redis pod's init-role waits in Init until a majority of
/// the sentinels answers (silence is never a first boot), so waiting for
/// Redis before creating the sentinels would never end. The proxy's step
/// waits for the proxy, after both.
pub fn apply_plan(manifests: Vec<Manifest>) -> Vec<Step> {
    let steps: Vec<(Manifest, Wait)> = manifests
        .into_iter()
        .filter(|m| in_kustomization(m.file))
        .map(|m| {
            let w = wait_for(&m.objects);
            (m, w)
        })
        .collect();
    let last_set = steps
        .iter()
        .rposition(|(_, w)| matches!(w, Wait::StatefulSet(_)));
    let mut deferred = Vec::new();
    steps
        .into_iter()
        .enumerate()
        .map(|(i, (m, w))| {
            let waits = match w {
                Wait::Nothing => Vec::new(),
                Wait::StatefulSet(_) if Some(i) != last_set => {
                    deferred.push(w);
                    Vec::new()
                }
                w => {
                    let mut all = std::mem::take(&mut deferred);
                    all.push(w);
                    all
                }
            };
            Step {
                waits,
                file: m.file,
                objects: m.objects,
            }
        })
        .collect()
}

/// Whether `delete` keeps the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purge {
    /// Keep the PersistentVolumeClaims, and with them the Namespace and
    /// the Secret whose password the data was written with.
    KeepData,
    /// Delete the claims and the Namespace too.
    Everything,
}

#[derive(Clone, Debug)]
pub enum DeleteStep {
    File(Manifest),
    /// Every PersistentVolumeClaim labelled `app.kubernetes.io/name=redis-ha`.
    Claims,
}

fn holds_data(m: &Manifest) -> bool {
    m.objects
        .iter()
        .any(|o| matches!(o, Object::Namespace(_) | Object::Secret(_)))
}

/// Reverse apply order (clients and proxy first, Redis last), the Jobs
/// included; data and what it depends on only with [`Purge::Everything`].
pub fn delete_plan(manifests: Vec<Manifest>, purge: Purge) -> Vec<DeleteStep> {
    let (keep, mut files): (Vec<_>, Vec<_>) = manifests.into_iter().partition(holds_data);
    files.reverse();
    let mut steps: Vec<DeleteStep> = files.into_iter().map(DeleteStep::File).collect();
    if purge == Purge::Everything {
        steps.push(DeleteStep::Claims);
        steps.extend(keep.into_iter().rev().map(DeleteStep::File));
    }
    steps
}

impl Wait {
    /// What the progress line says it waits for.
    pub fn describe(&self) -> String {
        match self {
            Wait::Nothing => "nothing".into(),
            Wait::StatefulSet(n) => {
                format!("StatefulSet {n}: all pods ready on the current revision")
            }
            Wait::Deployment(n) => format!("Deployment {n}: all pods updated and available"),
        }
    }

    /// What to look at when the wait times out.
    pub fn hint(&self, ns: &str) -> String {
        let k = format!("kubectl -n {ns}");
        match self {
            Wait::Nothing => String::new(),
            Wait::StatefulSet(n) if n == "redis" => format!(
                "check `{k} get pods -l app.kubernetes.io/component=redis`, `{k} describe pod redis-0` \
                 (pending volume? image pull?), `{k} logs redis-1 -c init-role` (boot role) and `-c redis`"
            ),
            Wait::StatefulSet(n) => format!(
                "check `{k} get pods -l app.kubernetes.io/component=sentinel`, `{k} describe pod {n}-0`, \
                 `{k} logs {n}-0 -c copy-config` and `-c sentinel`"
            ),
            Wait::Deployment(n) => format!(
                "check `{k} describe deploy/{n}` and `{k} logs deploy/{n}`: a proxy is ready only once a \
                 sentinel majority names a master it can reach (`redis-ha k8s status`)"
            ),
        }
    }
}

/// `k=v,k=v` from match labels, as a list call's label selector.
pub fn label_selector(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::RenderOptions;
    use crate::render::manifests;

    fn files(steps: &[DeleteStep]) -> Vec<&str> {
        steps
            .iter()
            .map(|s| match s {
                DeleteStep::File(m) => m.file,
                DeleteStep::Claims => "claims",
            })
            .collect()
    }

    #[test]
    fn apply_waits_for_redis_then_sentinels_then_proxy_and_skips_jobs() {
        let plan = apply_plan(manifests(&RenderOptions::default()).unwrap());
        assert!(plan.iter().all(|s| !s.file.starts_with("06")));
        let waits: Vec<(&str, &[Wait])> = plan
            .iter()
            .filter(|s| !s.waits.is_empty())
            .map(|s| (s.file, s.waits.as_slice()))
            .collect();
        // Redis and the sentinels start together (Redis's init waits for
        // them) and are waited for together; the proxy after both.
        assert_eq!(
            waits,
            [
                (
                    "05-statefulset-sentinel.yaml",
                    &[
                        Wait::StatefulSet("redis".into()),
                        Wait::StatefulSet("sentinel".into())
                    ][..]
                ),
                (
                    "08-deployment-proxy.yaml",
                    &[Wait::Deployment("redis-ha-proxy".into())][..]
                ),
            ]
        );
        assert_eq!(plan[0].file, "00-namespace.yaml");
        let pos = |f: &str| plan.iter().position(|s| s.file == f).unwrap();
        assert!(pos("00a-secret.yaml") < pos("04-statefulset-redis.yaml"));
        assert!(pos("07-configmap-proxy.yaml") < pos("08-deployment-proxy.yaml"));
    }

    #[test]
    fn delete_keeps_data_unless_purged() {
        let m = || manifests(&RenderOptions::default()).unwrap();
        let keep = delete_plan(m(), Purge::KeepData);
        let names = files(&keep);
        assert_eq!(names[0], "11-networkpolicy.yaml");
        assert_eq!(*names.last().unwrap(), "01-configmap-redis.yaml");
        assert!(!names.contains(&"claims") && !names.contains(&"00-namespace.yaml"));
        assert!(!names.contains(&"00a-secret.yaml"));
        assert!(names.contains(&"06a-benchmark-write-job.yaml"));
        let purge = delete_plan(m(), Purge::Everything);
        let names = files(&purge);
        let tail: Vec<&str> = names[names.len() - 3..].to_vec();
        assert_eq!(tail, ["claims", "00a-secret.yaml", "00-namespace.yaml"]);
    }

    #[test]
    fn label_selector_joins_pairs() {
        let m = std::collections::BTreeMap::from([
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ]);
        assert_eq!(label_selector(&m), "a=1,b=2");
        assert_eq!(label_selector(&Default::default()), "");
    }
}
