//! `current_setting(name [, missing_ok])`: a setting of the calling session, as
//! PostgreSQL answers it. Bound to one session's settings, so it is registered by
//! [`crate::session::Session`], not by `register_all`.

use std::sync::{Arc, LazyLock, RwLock};

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::session::Settings;

/// `current_setting(text [, boolean]) -> text`.
#[derive(Debug)]
pub struct CurrentSetting {
    signature: Signature,
    settings: Arc<RwLock<Settings>>,
}

impl PartialEq for CurrentSetting {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.settings, &other.settings)
    }
}

impl Eq for CurrentSetting {}

impl std::hash::Hash for CurrentSetting {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.settings) as usize).hash(state);
    }
}

impl CurrentSetting {
    pub fn new(settings: Arc<RwLock<Settings>>) -> Self {
        CurrentSetting {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
                ],
                Volatility::Stable,
            ),
            settings,
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Returns the current value of a setting of the session, as SHOW does. With \
         missing_ok true, an unknown setting gives NULL instead of an error (42704).",
        "current_setting(name [, missing_ok])",
    )
    .with_sql_example("```sql\n> SELECT current_setting('TimeZone');\n+------------------------------------+\n| current_setting(Utf8(\"TimeZone\")) |\n+------------------------------------+\n| UTC                                |\n+------------------------------------+\n```")
    .with_argument("name", "The setting, e.g. 'search_path', 'TimeZone', 'application_name'.")
    .with_argument("missing_ok", "Return NULL for an unknown setting. Default false.")
    .build()
});

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let missing_ok = match args.args.get(1) {
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(b))) => b.unwrap_or(false),
            Some(_) => return exec_err!("current_setting: missing_ok must be a constant"),
            None => false,
        };
        let settings = self.settings.read().expect(crate::LOCK_POISONED);
        let lookup = |name: &str| -> Result<Option<String>> {
            match settings.get(name) {
                Ok(value) => Ok(Some(value.to_string())),
                Err(_) if missing_ok => Ok(None),
                Err(e) => Err(DataFusionError::External(Box::new(e))),
            }
        };
        match &args.args[0] {
            ColumnarValue::Scalar(scalar) => match scalar.try_as_str().flatten() {
                Some(name) => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(lookup(name)?))),
                None => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None))),
            },
            ColumnarValue::Array(array) => {
                let names = array.as_string::<i32>();
                let mut out = StringBuilder::with_capacity(names.len(), names.len() * 8);
                for i in 0..names.len() {
                    if names.is_null(i) {
                        out.append_null();
                    } else {
                        out.append_option(lookup(names.value(i))?);
                    }
                }
                Ok(ColumnarValue::Array(Arc::new(out.finish())))
            }
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}
