//! The rendered manifests, read back: each file `redis-ha k8s render`
//! writes is rendered to its YAML text and parsed into typed k8s-openapi
//! objects, so the pods run what a user would `kubectl apply`, nothing
//! written by hand.

use anyhow::{bail, Context};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use redis_ha_k8s::options::RenderOptions;
use redis_ha_k8s::render::{self, Manifest, Object};
use serde_json::Value;

/// Every base manifest, in the numbered order, as parsed from its YAML.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub options: RenderOptions,
    pub manifests: Vec<Manifest>,
}

/// One YAML document into the object of its kind.
pub fn parse_object(doc: &str) -> anyhow::Result<Object> {
    let v: Value = serde_norway::from_str(doc).context("not YAML")?;
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let o = match kind.as_str() {
        "Namespace" => Object::Namespace(serde_json::from_value::<Namespace>(v)?),
        "Secret" => Object::Secret(serde_json::from_value::<Secret>(v)?),
        "ConfigMap" => Object::ConfigMap(serde_json::from_value::<ConfigMap>(v)?),
        "Service" => Object::Service(serde_json::from_value::<Service>(v)?),
        "StatefulSet" => Object::StatefulSet(serde_json::from_value::<StatefulSet>(v)?),
        "Deployment" => Object::Deployment(serde_json::from_value::<Deployment>(v)?),
        "Job" => Object::Job(serde_json::from_value::<Job>(v)?),
        "PodDisruptionBudget" => {
            Object::PodDisruptionBudget(serde_json::from_value::<PodDisruptionBudget>(v)?)
        }
        "NetworkPolicy" => Object::NetworkPolicy(serde_json::from_value::<NetworkPolicy>(v)?),
        "" => bail!("a YAML document without kind"),
        _ => Object::Custom(v),
    };
    Ok(o)
}

/// A file's YAML (documents separated by `---` lines) into its objects.
pub fn parse_file(text: &str) -> anyhow::Result<Vec<Object>> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else if let Some(d) = docs.last_mut() {
            d.push_str(line);
            d.push('\n');
        }
    }
    docs.iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|d| parse_object(d))
        .collect()
}

impl Rendered {
    /// Renders with `options` and reads every base file back from its YAML.
    pub fn new(options: RenderOptions) -> anyhow::Result<Rendered> {
        let mut manifests = Vec::new();
        for m in render::manifests(&options)? {
            let text = render::to_yaml(&m)?;
            let objects =
                parse_file(&text).with_context(|| format!("parsing the rendered {}", m.file))?;
            manifests.push(Manifest {
                file: m.file,
                objects,
            });
        }
        Ok(Rendered { options, manifests })
    }

    /// A benchmark Job as `redis-ha k8s bench` makes it (the seed's shape,
    /// `load` as given), through its YAML like the rest.
    pub fn bench_job(
        &self,
        name: &str,
        phase: render::Phase,
        load: &render::Load,
    ) -> anyhow::Result<Job> {
        let job = render::job(&self.options, name, phase, load);
        let m = Manifest {
            file: "bench-job.yaml",
            objects: vec![Object::Job(job)],
        };
        match parse_file(&render::to_yaml(&m)?)?.pop() {
            Some(Object::Job(j)) => Ok(j),
            _ => bail!("the rendered Job did not parse back as a Job"),
        }
    }

    fn all(&self) -> impl Iterator<Item = &Object> {
        self.manifests.iter().flat_map(|m| m.objects.iter())
    }

    pub fn secrets(&self) -> Vec<&Secret> {
        self.all()
            .filter_map(|o| {
                if let Object::Secret(s) = o {
                    Some(s)
                } else {
                    None
                }
            })
            .collect()
    }

    pub fn config_maps(&self) -> Vec<&ConfigMap> {
        self.all()
            .filter_map(|o| {
                if let Object::ConfigMap(c) = o {
                    Some(c)
                } else {
                    None
                }
            })
            .collect()
    }

    pub fn services(&self) -> Vec<&Service> {
        self.all()
            .filter_map(|o| {
                if let Object::Service(s) = o {
                    Some(s)
                } else {
                    None
                }
            })
            .collect()
    }

    pub fn stateful_set(&self, name: &str) -> anyhow::Result<&StatefulSet> {
        self.all()
            .find_map(|o| match o {
                Object::StatefulSet(s) if s.metadata.name.as_deref() == Some(name) => Some(s),
                _ => None,
            })
            .with_context(|| format!("no StatefulSet {name} in the render"))
    }

    pub fn deployment(&self, name: &str) -> anyhow::Result<&Deployment> {
        self.all()
            .find_map(|o| match o {
                Object::Deployment(d) if d.metadata.name.as_deref() == Some(name) => Some(d),
                _ => None,
            })
            .with_context(|| format!("no Deployment {name} in the render"))
    }

    pub fn job(&self, name: &str) -> anyhow::Result<&Job> {
        self.all()
            .find_map(|o| match o {
                Object::Job(j) if j.metadata.name.as_deref() == Some(name) => Some(j),
                _ => None,
            })
            .with_context(|| format!("no Job {name} in the render"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rendered_file_parses_back_into_its_objects() {
        let r = Rendered::new(RenderOptions::default()).unwrap();
        let direct = render::manifests(&RenderOptions::default()).unwrap();
        assert_eq!(r.manifests.len(), direct.len());
        for (parsed, m) in r.manifests.iter().zip(&direct) {
            assert_eq!(parsed.file, m.file);
            // Same objects: serialised again, they are equal.
            assert_eq!(
                serde_json::to_value(&parsed.objects).unwrap(),
                serde_json::to_value(&m.objects).unwrap(),
                "{}",
                m.file
            );
        }
        assert!(r.stateful_set("redis").is_ok() && r.stateful_set("sentinel").is_ok());
        assert!(r.deployment("redis-ha-proxy").is_ok());
        assert!(r.job("benchmark-write").is_ok());
        assert!(r.stateful_set("nope").is_err());
    }

    #[test]
    fn documents_split_on_separator_lines_and_need_a_kind() {
        let two = "# header\nkind: Namespace\nmetadata:\n  name: a\n---\nkind: Namespace\nmetadata:\n  name: b\n";
        assert_eq!(parse_file(two).unwrap().len(), 2);
        assert!(parse_file("metadata:\n  name: a\n").is_err());
        assert!(parse_file("kind: [").is_err());
    }
}
