//! The device models train and score on.

use std::fmt;

use candle_core::Device;

use super::MlError;

/// Where tensors live: `cpu` (the default) or `cuda[:N]`, an NVIDIA GPU (the `cuda`
/// feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MlDevice {
    #[default]
    Cpu,
    Cuda(usize),
}

impl MlDevice {
    /// Parses a setting's value: `cpu`, `cuda`, `cuda:N` (case-insensitive).
    ///
    /// ```
    /// use martdb::ml::runtime::MlDevice;
    /// assert_eq!(MlDevice::parse("CUDA:1").unwrap(), MlDevice::Cuda(1));
    /// assert!(MlDevice::parse("tpu").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, MlError> {
        let text = text.trim().to_ascii_lowercase();
        match text.as_str() {
            "cpu" => Ok(MlDevice::Cpu),
            "cuda" | "gpu" => Ok(MlDevice::Cuda(0)),
            _ => match text.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(ordinal)) => Ok(MlDevice::Cuda(ordinal)),
                _ => Err(MlError::Input(format!(
                    "unknown ml device '{text}': expected 'cpu', 'cuda' or 'cuda:N'"
                ))),
            },
        }
    }

    /// The candle device; an error when it is not there.
    pub fn open(self) -> Result<Device, MlError> {
        match self {
            MlDevice::Cpu => Ok(Device::Cpu),
            MlDevice::Cuda(ordinal) => open_cuda(ordinal),
        }
    }
}

impl fmt::Display for MlDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MlDevice::Cpu => f.write_str("cpu"),
            MlDevice::Cuda(0) => f.write_str("cuda"),
            MlDevice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// One context per GPU for the life of the process: creating one costs far more than a
/// scoring batch.
#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<Device, MlError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static OPENED: OnceLock<Mutex<HashMap<usize, Device>>> = OnceLock::new();
    let mut opened = OPENED
        .get_or_init(Default::default)
        .lock()
        .expect(crate::LOCK_POISONED);
    if let Some(device) = opened.get(&ordinal) {
        return Ok(device.clone());
    }
    let device = Device::new_cuda(ordinal).map_err(|e| {
        MlError::Device(format!(
            "ml device 'cuda:{ordinal}' is not available (no NVIDIA GPU or driver found: {e}); \
             use 'cpu'"
        ))
    })?;
    opened.insert(ordinal, device.clone());
    Ok(device)
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(ordinal: usize) -> Result<Device, MlError> {
    Err(MlError::Device(format!(
        "ml device 'cuda:{ordinal}' is not available: this martdb was built without the \
         `cuda` feature; use 'cpu'"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_opens_and_names_round_trip() {
        assert!(MlDevice::Cpu.open().unwrap().is_cpu());
        for text in ["cpu", "cuda", "cuda:2"] {
            assert_eq!(MlDevice::parse(text).unwrap().to_string(), text);
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_gpu_without_the_feature_is_a_clear_error() {
        let err = MlDevice::Cuda(0).open().unwrap_err();
        assert_eq!(err.sqlstate(), "0A000");
        assert!(err.to_string().contains("without the `cuda` feature"));
    }
}
