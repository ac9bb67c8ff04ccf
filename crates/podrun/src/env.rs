//! A container's environment as the kubelet builds it: `envFrom` first,
//! then `env` in order, `valueFrom` read from the pod (`fieldRef`), the
//! Secrets (`secretKeyRef`) and ConfigMaps (`configMapKeyRef`), and
//! `$(VAR)` references expanded the kubelet's way.

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::{Container, EnvVar};
use std::collections::BTreeMap;

/// Key/value data by object name (the Secrets' or the ConfigMaps').
pub type Data = BTreeMap<String, BTreeMap<String, String>>;

/// What `fieldRef` can read of a pod.
#[derive(Clone, Debug)]
pub struct PodFields {
    pub name: String,
    pub namespace: String,
}

/// Expands `$(VAR)` as the kubelet does: a defined variable is replaced,
/// an undefined one is left as written, `$$` is a literal `$`, and any
/// other `$` (or an unclosed `$(`) stays as it is.
pub fn expand(s: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn field(pod: &PodFields, path: &str) -> anyhow::Result<String> {
    match path {
        "metadata.name" => Ok(pod.name.clone()),
        "metadata.namespace" => Ok(pod.namespace.clone()),
        other => bail!("fieldRef {other:?} is not supported by the pod runner (metadata.name, metadata.namespace)"),
    }
}

fn key_of(
    data: &Data,
    kind: &str,
    name: &str,
    key: &str,
    optional: bool,
) -> anyhow::Result<Option<String>> {
    match data.get(name).and_then(|d| d.get(key)) {
        Some(v) => Ok(Some(v.clone())),
        None if optional => Ok(None),
        None => bail!("{kind} {name:?} has no key {key:?} (and the reference is not optional)"),
    }
}

fn value_of(
    v: &EnvVar,
    vars: &[(String, String)],
    pod: &PodFields,
    secrets: &Data,
    config_maps: &Data,
) -> anyhow::Result<Option<String>> {
    let Some(from) = &v.value_from else {
        let raw = v.value.clone().unwrap_or_default();
        return Ok(Some(expand(&raw, |n| lookup(vars, n))));
    };
    if let Some(f) = &from.field_ref {
        return field(pod, &f.field_path).map(Some);
    }
    if let Some(s) = &from.secret_key_ref {
        return key_of(secrets, "Secret", &s.name, &s.key, s.optional == Some(true));
    }
    if let Some(c) = &from.config_map_key_ref {
        return key_of(
            config_maps,
            "ConfigMap",
            &c.name,
            &c.key,
            c.optional == Some(true),
        );
    }
    bail!(
        "env {}: only fieldRef, secretKeyRef and configMapKeyRef are supported by the pod runner",
        v.name
    )
}

/// The latest definition of `name` (a later one overrides an earlier).
fn lookup(vars: &[(String, String)], name: &str) -> Option<String> {
    vars.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// The container's environment, in the kubelet's order, one value per name.
pub fn resolve(
    c: &Container,
    pod: &PodFields,
    secrets: &Data,
    config_maps: &Data,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (kind, data, name, optional) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => ("ConfigMap", config_maps, &r.name, r.optional == Some(true)),
            (None, Some(r)) => ("Secret", secrets, &r.name, r.optional == Some(true)),
            (None, None) => bail!(
                "container {}: envFrom without configMapRef or secretRef",
                c.name
            ),
        };
        match data.get(name) {
            Some(d) => vars.extend(d.iter().map(|(k, v)| (format!("{prefix}{k}"), v.clone()))),
            None if optional => {}
            None => bail!(
                "container {}: envFrom {kind} {name:?} does not exist",
                c.name
            ),
        }
    }
    for v in c.env.iter().flatten() {
        let value = value_of(v, &vars, pod, secrets, config_maps)
            .with_context(|| format!("container {}, env {}", c.name, v.name))?;
        if let Some(value) = value {
            vars.push((v.name.clone(), value));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut out: Vec<(String, String)> = vars
        .into_iter()
        .rev()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect();
    out.reverse();
    Ok(out)
}

/// The container's command and args with `$(VAR)` expanded from its
/// environment (`None` keeps the image's ENTRYPOINT or CMD).
pub fn command_line(
    c: &Container,
    env: &[(String, String)],
) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let ex = |v: &Option<Vec<String>>| {
        v.as_ref()
            .map(|v| v.iter().map(|s| expand(s, |n| lookup(env, n))).collect())
    };
    (ex(&c.command), ex(&c.args))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, EnvFromSource, EnvVarSource, ObjectFieldSelector, SecretKeySelector,
    };

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn expands_as_the_kubelet_does() {
        let v = vars(&[("POD_NAME", "redis-1"), ("EMPTY", "")]);
        assert_eq!(
            expand("$(POD_NAME).redis-headless", &v),
            "redis-1.redis-headless"
        );
        assert_eq!(expand("a$(EMPTY)b", &v), "ab");
        assert_eq!(expand("$(UNDEFINED)", &v), "$(UNDEFINED)");
        assert_eq!(expand("$$(POD_NAME)", &v), "$(POD_NAME)");
        assert_eq!(expand("$$$(POD_NAME)", &v), "$redis-1");
        assert_eq!(expand("cost $5 and $", &v), "cost $5 and $");
        assert_eq!(expand("$(POD_NAME", &v), "$(POD_NAME");
        assert_eq!(expand("\"$POD_NAME\"", &v), "\"$POD_NAME\"");
    }

    fn env(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    fn from(name: &str, source: EnvVarSource) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(source),
        }
    }

    fn data(name: &str, pairs: &[(&str, &str)]) -> Data {
        let inner = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        [(name.to_string(), inner)].into_iter().collect()
    }

    fn pod() -> PodFields {
        PodFields {
            name: "redis-0".into(),
            namespace: "ns".into(),
        }
    }

    #[test]
    fn resolves_fields_secrets_config_maps_and_earlier_vars() {
        let c = Container {
            name: "c".into(),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "proxy".into(),
                    optional: Some(false),
                }),
                ..Default::default()
            }]),
            env: Some(vec![
                from(
                    "POD_NAME",
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.name".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    },
                ),
                from(
                    "PASSWORD",
                    EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "auth".into(),
                            key: "password".into(),
                            optional: Some(false),
                        }),
                        ..Default::default()
                    },
                ),
                env("HOST", "$(POD_NAME).svc"),
                // Defined later: not expanded in an earlier value, as in Kubernetes.
                env("EARLY", "$(LATE)"),
                env("LATE", "x"),
                // Overrides envFrom's MODE.
                env("MODE", "single"),
            ]),
            command: Some(vec!["redis-ha".into()]),
            args: Some(vec![
                "--mode".into(),
                "$(MODE)".into(),
                "$(HOST)".into(),
                "$(NOPE)".into(),
            ]),
            ..Default::default()
        };
        let secrets = data("auth", &[("password", "pw")]);
        let cms = data(
            "proxy",
            &[("MODE", "multiplex"), ("MASTER_NAME", "mymaster")],
        );
        let e = resolve(&c, &pod(), &secrets, &cms).unwrap();
        let get = |k: &str| e.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("POD_NAME"), Some("redis-0"));
        assert_eq!(get("PASSWORD"), Some("pw"));
        assert_eq!(get("HOST"), Some("redis-0.svc"));
        assert_eq!(get("EARLY"), Some("$(LATE)"));
        assert_eq!(get("MODE"), Some("single"));
        assert_eq!(get("MASTER_NAME"), Some("mymaster"));
        assert_eq!(e.iter().filter(|(n, _)| n == "MODE").count(), 1);
        let (cmd, args) = command_line(&c, &e);
        assert_eq!(cmd.unwrap(), ["redis-ha"]);
        assert_eq!(
            args.unwrap(),
            ["--mode", "single", "redis-0.svc", "$(NOPE)"]
        );
    }

    #[test]
    fn a_missing_secret_key_is_an_error_unless_optional() {
        let missing = |optional| Container {
            name: "c".into(),
            env: Some(vec![from(
                "P",
                EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "auth".into(),
                        key: "nope".into(),
                        optional: Some(optional),
                    }),
                    ..Default::default()
                },
            )]),
            ..Default::default()
        };
        let secrets = data("auth", &[("password", "pw")]);
        let err = resolve(&missing(false), &pod(), &secrets, &Data::new()).unwrap_err();
        assert!(format!("{err:#}").contains("no key \"nope\""), "{err:#}");
        assert!(resolve(&missing(true), &pod(), &secrets, &Data::new())
            .unwrap()
            .is_empty());
        let field = Container {
            name: "c".into(),
            env: Some(vec![from(
                "IP",
                EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "status.podIP".into(),
                        api_version: None,
                    }),
                    ..Default::default()
                },
            )]),
            ..Default::default()
        };
        assert!(resolve(&field, &pod(), &secrets, &Data::new()).is_err());
    }
}
