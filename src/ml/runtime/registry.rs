//! The model registry: every trained version of every model, and which one is deployed.
//!
//! Layout: metadata in the state store (tables `models`, key `(name, version)`, and
//! `model_deployed`, key `name`); weights as one safetensors file per version,
//! `<state dir>/models/<name>/<version>.safetensors`.
//!
//! Invariants:
//! - a version is visible only once it is complete: its weights file is written to a
//!   temporary name, synced, renamed into place and its directory synced, and only then
//!   is the metadata committed (one redb transaction, durable). A crash in between
//!   leaves at most a weights file that no metadata names; the next save of that name
//!   overwrites it;
//! - versions of a name are 1, 2, 3, ... and never reused; saves of one registry are
//!   serialised, so two concurrent trainings of a name get different versions;
//! - every name with a version has exactly one deployed version; deploying changes only
//!   that pointer, so a rollback is instant and loses nothing;
//! - a failed save or deploy changes nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use candle_core::{Device, Tensor};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::MlError;
use crate::storage::Storage;

const MODELS: TableDefinition<(&str, i64), &str> = TableDefinition::new("models");
const DEPLOYED: TableDefinition<&str, i64> = TableDefinition::new("model_deployed");

/// A stored model version, as `martdb.models` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub version: i64,
    /// The task: `uplift`, ...
    pub kind: String,
    /// The learner and base, e.g. `t_learner/linear`.
    pub algorithm: String,
    /// `name type` of each feature column, in training order.
    pub features: Vec<String>,
    /// The options it was trained with (JSON object).
    pub params: serde_json::Value,
    /// Its validation metrics (JSON object).
    pub metrics: serde_json::Value,
    /// Microseconds since the epoch.
    pub trained_at: i64,
    pub training_rows: u64,
    /// Whatever the kind needs to rebuild the model around its weights (the feature
    /// transform, ...).
    pub spec: serde_json::Value,
    /// Not stored: whether this is the deployed version.
    #[serde(skip)]
    pub deployed: bool,
}

/// When a new version becomes the deployed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployPolicy {
    /// If it is the first version, or its score is at least the deployed version's.
    Auto,
    Always,
    Never,
}

impl DeployPolicy {
    pub fn parse(text: &str) -> Result<Self, MlError> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Ok(DeployPolicy::Auto),
            "always" | "true" | "on" => Ok(DeployPolicy::Always),
            "never" | "false" | "off" => Ok(DeployPolicy::Never),
            other => Err(MlError::Input(format!(
                "unknown deploy policy '{other}': expected auto, always or never"
            ))),
        }
    }
}

/// A model to save: everything but its version.
pub struct NewModel {
    pub name: String,
    pub kind: String,
    pub algorithm: String,
    pub features: Vec<String>,
    pub params: serde_json::Value,
    pub metrics: serde_json::Value,
    pub training_rows: u64,
    pub spec: serde_json::Value,
    pub tensors: Vec<(String, Tensor)>,
    /// The metric [`DeployPolicy::Auto`] compares (higher is better).
    pub score: f64,
    pub deploy: DeployPolicy,
}

/// The models of one database. Cheap to clone.
#[derive(Clone)]
pub struct ModelRegistry {
    storage: Weak<Storage>,
    /// Serialises saves and deploys (version numbers, file names).
    writing: Arc<Mutex<()>>,
}

impl std::fmt::Debug for ModelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ModelRegistry")
    }
}

/// A model name: it names files, so letters, digits and `_` only.
fn check_name(name: &str) -> Result<(), MlError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(MlError::Input(format!(
            "invalid model name '{name}': use 1 to 63 letters, digits and underscores"
        )));
    }
    Ok(())
}

impl ModelRegistry {
    pub fn new(storage: &Arc<Storage>) -> Self {
        ModelRegistry {
            storage: Arc::downgrade(storage),
            writing: Arc::new(Mutex::new(())),
        }
    }

    fn storage(&self) -> Result<Arc<Storage>, MlError> {
        self.storage
            .upgrade()
            .ok_or_else(|| MlError::Store("the database is closed".into()))
    }

    fn weights_path(storage: &Storage, name: &str, version: i64) -> PathBuf {
        storage
            .state_dir()
            .join("models")
            .join(name)
            .join(format!("{version}.safetensors"))
    }

    fn store_error(e: impl std::fmt::Display) -> MlError {
        MlError::Store(e.to_string())
    }

    /// Saves a new version of `model.name`; returns it (with `deployed` set).
    pub fn save(&self, model: NewModel) -> Result<ModelInfo, MlError> {
        check_name(&model.name)?;
        let storage = self.storage()?;
        let _writing = self.writing.lock().expect(crate::LOCK_POISONED);
        let versions = self.versions(&model.name)?;
        let version = versions.last().map_or(1, |v| v.version + 1);
        let deployed = versions.iter().find(|v| v.deployed);
        let deploy = match model.deploy {
            DeployPolicy::Always => true,
            DeployPolicy::Never => deployed.is_none(),
            DeployPolicy::Auto => deployed.is_none_or(|d| {
                let best = d.metrics.get("score").and_then(|s| s.as_f64());
                best.is_none_or(|best| model.score >= best)
            }),
        };
        let path = Self::weights_path(&storage, &model.name, version);
        let dir = path
            .parent()
            .expect("weights_path joins a file name onto a directory");
        std::fs::create_dir_all(dir).map_err(Self::store_error)?;
        let temporary = path.with_extension("safetensors.partial");
        let tensors: HashMap<String, Tensor> = model
            .tensors
            .into_iter()
            .map(|(name, t)| Ok((name, t.to_device(&Device::Cpu)?)))
            .collect::<Result<_, MlError>>()?;
        candle_core::safetensors::save(&tensors, &temporary)?;
        crate::storage::sync_paths(std::slice::from_ref(&temporary)).map_err(Self::store_error)?;
        std::fs::rename(&temporary, &path).map_err(Self::store_error)?;
        crate::storage::sync_paths(std::slice::from_ref(&path)).map_err(Self::store_error)?;
        let mut metrics = model.metrics;
        if let Some(object) = metrics.as_object_mut() {
            object.insert("score".into(), serde_json::json!(model.score));
        }
        let info = ModelInfo {
            name: model.name,
            version,
            kind: model.kind,
            algorithm: model.algorithm,
            features: model.features,
            params: model.params,
            metrics,
            trained_at: crate::rules::store::now_micros(),
            training_rows: model.training_rows,
            spec: model.spec,
            deployed: deploy,
        };
        let json = serde_json::to_string(&info).map_err(Self::store_error)?;
        let kv_error = |e: redb::Error| Self::store_error(storage.kv_error(e));
        let txn = storage.kv().begin_write().map_err(|e| kv_error(e.into()))?;
        {
            let mut models = txn.open_table(MODELS).map_err(|e| kv_error(e.into()))?;
            models
                .insert((info.name.as_str(), version), json.as_str())
                .map_err(|e| kv_error(e.into()))?;
            if deploy {
                let mut pointer = txn.open_table(DEPLOYED).map_err(|e| kv_error(e.into()))?;
                pointer
                    .insert(info.name.as_str(), version)
                    .map_err(|e| kv_error(e.into()))?;
            }
        }
        txn.commit().map_err(|e| kv_error(e.into()))?;
        Ok(info)
    }

    /// Every version of every model, by name and version.
    pub fn list(&self) -> Result<Vec<ModelInfo>, MlError> {
        self.read(None)
    }

    /// The versions of `name`, oldest first (empty when there is none).
    pub fn versions(&self, name: &str) -> Result<Vec<ModelInfo>, MlError> {
        self.read(Some(name))
    }

    fn read(&self, only: Option<&str>) -> Result<Vec<ModelInfo>, MlError> {
        let storage = self.storage()?;
        let kv_error = |e: redb::Error| Self::store_error(storage.kv_error(e));
        let txn = storage.kv().begin_read().map_err(|e| kv_error(e.into()))?;
        let models = match txn.open_table(MODELS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(kv_error(e.into())),
        };
        let deployed: HashMap<String, i64> = match txn.open_table(DEPLOYED) {
            Ok(t) => t
                .iter()
                .map_err(|e| kv_error(e.into()))?
                .map(|entry| {
                    let (name, version) = entry.map_err(|e| kv_error(e.into()))?;
                    Ok((name.value().to_string(), version.value()))
                })
                .collect::<Result<_, MlError>>()?,
            Err(redb::TableError::TableDoesNotExist(_)) => HashMap::new(),
            Err(e) => return Err(kv_error(e.into())),
        };
        let entries = match only {
            Some(name) => models.range((name, i64::MIN)..=(name, i64::MAX)),
            None => models.range::<(&str, i64)>(..),
        }
        .map_err(|e| kv_error(e.into()))?;
        let mut out = Vec::new();
        for entry in entries {
            let (_, json) = entry.map_err(|e| kv_error(e.into()))?;
            let mut info: ModelInfo =
                serde_json::from_str(json.value()).map_err(Self::store_error)?;
            info.deployed = deployed.get(&info.name) == Some(&info.version);
            out.push(info);
        }
        Ok(out)
    }

    /// The version of `name` to use: `version`, or the deployed one.
    pub fn get(&self, name: &str, version: Option<i64>) -> Result<ModelInfo, MlError> {
        let versions = self.versions(name)?;
        if versions.is_empty() {
            return Err(MlError::ModelNotFound { name: name.into() });
        }
        let found = match version {
            Some(v) => versions.into_iter().find(|i| i.version == v),
            None => versions.into_iter().find(|i| i.deployed),
        };
        found.ok_or_else(|| MlError::VersionNotFound {
            name: name.into(),
            version: version.unwrap_or(0),
        })
    }

    /// The weights of a version, on the CPU.
    pub fn weights(&self, info: &ModelInfo) -> Result<HashMap<String, Tensor>, MlError> {
        let storage = self.storage()?;
        let path = Self::weights_path(&storage, &info.name, info.version);
        candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| {
            MlError::Store(format!(
                "reading the weights of model \"{}\" version {} ({}): {e}",
                info.name,
                info.version,
                path.display()
            ))
        })
    }

    /// The stored weights of `info` as the bytes of their safetensors file: what a
    /// frozen copy of the model carries to another process.
    pub fn weights_file(&self, info: &ModelInfo) -> Result<Vec<u8>, MlError> {
        let storage = self.storage()?;
        let path = Self::weights_path(&storage, &info.name, info.version);
        std::fs::read(&path).map_err(|e| {
            MlError::Store(format!(
                "reading the weights of model \"{}\" version {} ({}): {e}",
                info.name,
                info.version,
                path.display()
            ))
        })
    }

    /// Makes `version` the deployed version of `name` (a rollback when it is older).
    pub fn deploy(&self, name: &str, version: i64) -> Result<ModelInfo, MlError> {
        let storage = self.storage()?;
        let _writing = self.writing.lock().expect(crate::LOCK_POISONED);
        let mut info = self.get(name, Some(version))?;
        let kv_error = |e: redb::Error| Self::store_error(storage.kv_error(e));
        let txn = storage.kv().begin_write().map_err(|e| kv_error(e.into()))?;
        {
            let mut pointer = txn.open_table(DEPLOYED).map_err(|e| kv_error(e.into()))?;
            pointer
                .insert(name, version)
                .map_err(|e| kv_error(e.into()))?;
        }
        txn.commit().map_err(|e| kv_error(e.into()))?;
        info.deployed = true;
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageOptions;

    fn model(name: &str, score: f64, deploy: DeployPolicy) -> NewModel {
        NewModel {
            name: name.into(),
            kind: "test".into(),
            algorithm: "none".into(),
            features: vec!["x double".into()],
            params: serde_json::json!({}),
            metrics: serde_json::json!({}),
            training_rows: 3,
            spec: serde_json::json!({"k": 1}),
            tensors: vec![(
                "w".into(),
                Tensor::from_vec(vec![score as f32], (1, 1), &Device::Cpu).unwrap(),
            )],
            score,
            deploy,
        }
    }

    #[test]
    fn versions_deploy_by_policy_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().to_str().unwrap();
        {
            let storage = Arc::new(Storage::open(location, &StorageOptions::default()).unwrap());
            let registry = ModelRegistry::new(&storage);
            assert_eq!(
                registry
                    .save(model("m", 0.5, DeployPolicy::Auto))
                    .unwrap()
                    .version,
                1
            );
            // Worse: stored, not deployed.
            let v2 = registry.save(model("m", 0.4, DeployPolicy::Auto)).unwrap();
            assert!(!v2.deployed);
            assert_eq!(registry.get("m", None).unwrap().version, 1);
            let v3 = registry.save(model("m", 0.6, DeployPolicy::Auto)).unwrap();
            assert!(v3.deployed);
            registry.deploy("m", 2).unwrap();
            assert!(matches!(
                registry.deploy("m", 9),
                Err(MlError::VersionNotFound { .. })
            ));
            assert!(matches!(
                registry.get("nope", None),
                Err(MlError::ModelNotFound { .. })
            ));
            assert!(
                registry
                    .save(model("bad/name", 1.0, DeployPolicy::Auto))
                    .is_err()
            );
        }
        let storage = Arc::new(Storage::open(location, &StorageOptions::default()).unwrap());
        let registry = ModelRegistry::new(&storage);
        let deployed = registry.get("m", None).unwrap();
        assert_eq!(deployed.version, 2);
        let w = registry.weights(&deployed).unwrap();
        assert_eq!(
            w["w"].flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [0.4]
        );
        assert_eq!(registry.list().unwrap().len(), 3);
    }
}
