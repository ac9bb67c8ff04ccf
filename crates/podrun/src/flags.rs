//! Which `podman run` flags a pod's container maps to: its command and args
//! (as ENTRYPOINT and CMD), environment, volume mounts and security
//! context (the pod's, overridden field by field by the container's).

use anyhow::bail;
use k8s_openapi::api::core::v1::{Container, PodSecurityContext, SecurityContext};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where a pod volume's data lives on the podman side.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A podman named volume (a claim from volumeClaimTemplates, which
    /// outlives the pod, or an emptyDir, which does not).
    Volume(String),
    /// A host directory holding a ConfigMap's files, always read-only.
    ConfigMap(PathBuf),
}

/// One container to run, resolved.
pub struct RunSpec<'a> {
    /// The podman container name.
    pub name: String,
    /// The podman pod it joins (shares its network, IPC and UTS namespaces).
    pub pod: String,
    pub container: &'a Container,
    pub pod_security: Option<&'a PodSecurityContext>,
    pub env: Vec<(String, String)>,
    pub command: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
    /// The pod's volumes by name.
    pub volumes: &'a BTreeMap<String, Source>,
    pub labels: Vec<(String, String)>,
}

/// The arguments after `podman run` (without `-d`), image and command last.
pub fn run_args(s: &RunSpec) -> anyhow::Result<Vec<String>> {
    let c = s.container;
    let Some(image) = c.image.clone() else {
        bail!("container {} has no image", c.name)
    };
    let mut a: Vec<String> = vec![
        "--name".into(),
        s.name.clone(),
        "--pod".into(),
        s.pod.clone(),
    ];
    for (k, v) in &s.labels {
        a.extend(["--label".into(), format!("{k}={v}")]);
    }
    a.extend(security(c.security_context.as_ref(), s.pod_security)?);
    a.extend(mounts(c, s.volumes)?);
    for (k, v) in &s.env {
        a.extend(["--env".into(), format!("{k}={v}")]);
    }
    // Kubernetes: `command` replaces ENTRYPOINT (and with it the image's CMD),
    // `args` replaces CMD.
    if let Some(cmd) = &s.command {
        a.extend(["--entrypoint".into(), serde_json::to_string(cmd)?]);
    }
    a.push(image);
    a.extend(s.args.iter().flatten().cloned());
    Ok(a)
}

/// The security flags: user and group, fsGroup as a supplementary group,
/// read-only root (without podman's writable /tmp, which Kubernetes does
/// not give), dropped and added capabilities, no privilege escalation.
pub fn security(
    c: Option<&SecurityContext>,
    pod: Option<&PodSecurityContext>,
) -> anyhow::Result<Vec<String>> {
    let user = c
        .and_then(|c| c.run_as_user)
        .or(pod.and_then(|p| p.run_as_user));
    let group = c
        .and_then(|c| c.run_as_group)
        .or(pod.and_then(|p| p.run_as_group));
    let non_root = c
        .and_then(|c| c.run_as_non_root)
        .or(pod.and_then(|p| p.run_as_non_root))
        == Some(true);
    let mut a = Vec::new();
    match (user, group) {
        (Some(0), _) if non_root => {
            bail!("runAsNonRoot with runAsUser 0: the kubelet refuses to start this container")
        }
        (None, _) if non_root => {
            bail!("runAsNonRoot without runAsUser: the pod runner cannot check the image's user")
        }
        (Some(u), Some(g)) => a.extend(["--user".into(), format!("{u}:{g}")]),
        (Some(u), None) => a.extend(["--user".into(), u.to_string()]),
        (None, Some(_)) => bail!("runAsGroup without runAsUser is not supported by the pod runner"),
        (None, None) => {}
    }
    if let Some(g) = pod.and_then(|p| p.fs_group) {
        a.extend(["--group-add".into(), g.to_string()]);
    }
    let Some(c) = c else { return Ok(a) };
    if c.read_only_root_filesystem == Some(true) {
        a.extend(["--read-only".into(), "--read-only-tmpfs=false".into()]);
    }
    if c.allow_privilege_escalation == Some(false) {
        a.extend(["--security-opt".into(), "no-new-privileges".into()]);
    }
    if c.privileged == Some(true) {
        a.push("--privileged".into());
    }
    if let Some(caps) = &c.capabilities {
        for d in caps.drop.iter().flatten() {
            a.extend(["--cap-drop".into(), d.to_lowercase()]);
        }
        for d in caps.add.iter().flatten() {
            a.extend(["--cap-add".into(), d.to_lowercase()]);
        }
    }
    let seccomp = c
        .seccomp_profile
        .as_ref()
        .or(pod.and_then(|p| p.seccomp_profile.as_ref()));
    match seccomp.map(|s| s.type_.as_str()) {
        None | Some("RuntimeDefault") => {}
        Some("Unconfined") => a.extend(["--security-opt".into(), "seccomp=unconfined".into()]),
        Some(other) => bail!("seccompProfile {other} is not supported by the pod runner"),
    }
    Ok(a)
}

/// The `--mount`s of the container's volumeMounts.
pub fn mounts(c: &Container, volumes: &BTreeMap<String, Source>) -> anyhow::Result<Vec<String>> {
    let mut a = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        if m.sub_path.as_deref().is_some_and(|p| !p.is_empty()) {
            bail!(
                "container {}: subPath mounts are not supported by the pod runner",
                c.name
            );
        }
        let ro = if m.read_only == Some(true) {
            ",readonly"
        } else {
            ""
        };
        let spec = match volumes.get(&m.name) {
            Some(Source::Volume(v)) => {
                format!("type=volume,source={v},target={}{ro}", m.mount_path)
            }
            Some(Source::ConfigMap(dir)) => format!(
                "type=bind,source={},target={},readonly",
                dir.display(),
                m.mount_path
            ),
            None => bail!(
                "container {} mounts volume {:?}, which the pod does not declare",
                c.name,
                m.name
            ),
        };
        a.extend(["--mount".into(), spec]);
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Capabilities, SeccompProfile, VolumeMount};

    fn pod_sc() -> PodSecurityContext {
        PodSecurityContext {
            fs_group: Some(10001),
            run_as_group: Some(10001),
            run_as_user: Some(10001),
            run_as_non_root: Some(true),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..Default::default()
        }
    }

    fn container_sc() -> SecurityContext {
        SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            read_only_root_filesystem: Some(true),
            run_as_user: Some(10002),
            ..Default::default()
        }
    }

    #[test]
    fn the_rendered_security_context_maps_to_podman_flags() {
        let a = security(Some(&container_sc()), Some(&pod_sc()))
            .unwrap()
            .join(" ");
        // The container's user wins over the pod's; the group comes from the pod.
        assert!(a.contains("--user 10002:10001"), "{a}");
        assert!(a.contains("--group-add 10001"), "{a}");
        assert!(a.contains("--read-only --read-only-tmpfs=false"), "{a}");
        assert!(a.contains("--security-opt no-new-privileges"), "{a}");
        assert!(a.contains("--cap-drop all"), "{a}");
    }

    #[test]
    fn a_root_or_unknown_user_under_run_as_non_root_is_refused() {
        let root = SecurityContext {
            run_as_user: Some(0),
            ..Default::default()
        };
        assert!(security(Some(&root), Some(&pod_sc())).is_err());
        let unknown = PodSecurityContext {
            run_as_non_root: Some(true),
            ..Default::default()
        };
        assert!(security(None, Some(&unknown)).is_err());
        assert!(security(None, None).unwrap().is_empty());
    }

    #[test]
    fn command_is_the_entrypoint_and_args_follow_the_image() {
        let c = Container {
            name: "redis".into(),
            image: Some("redis:7.2".into()),
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "data".into(),
                    mount_path: "/data".into(),
                    ..Default::default()
                },
                VolumeMount {
                    name: "config".into(),
                    mount_path: "/etc/redis".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let volumes: BTreeMap<String, Source> = [
            ("data".to_string(), Source::Volume("t-data-redis-0".into())),
            (
                "config".to_string(),
                Source::ConfigMap("/tmp/x/config".into()),
            ),
        ]
        .into_iter()
        .collect();
        let s = RunSpec {
            name: "t-redis-0-redis".into(),
            pod: "t-redis-0".into(),
            container: &c,
            pod_security: None,
            env: vec![("A".into(), "b c".into())],
            command: Some(vec!["redis-server".into()]),
            args: Some(vec!["/etc/redis/redis.conf".into()]),
            volumes: &volumes,
            labels: vec![("podrun".into(), "t".into())],
        };
        let a = run_args(&s).unwrap();
        let at = |flag: &str| a.iter().position(|x| x == flag).map(|i| a[i + 1].as_str());
        assert_eq!(at("--entrypoint"), Some("[\"redis-server\"]"));
        assert_eq!(at("--env"), Some("A=b c"));
        assert_eq!(at("--pod"), Some("t-redis-0"));
        assert_eq!(&a[a.len() - 2..], ["redis:7.2", "/etc/redis/redis.conf"]);
        let m: Vec<&String> = a.iter().filter(|x| x.starts_with("type=")).collect();
        assert_eq!(m[0], "type=volume,source=t-data-redis-0,target=/data");
        assert_eq!(
            m[1],
            "type=bind,source=/tmp/x/config,target=/etc/redis,readonly"
        );
        let mut undeclared = c.clone();
        undeclared.volume_mounts.as_mut().unwrap()[0].name = "nope".into();
        let s = RunSpec {
            container: &undeclared,
            ..s
        };
        assert!(run_args(&s).is_err());
    }
}
