//! The function a masking policy wraps a column in at scan time
//! ([`crate::catalog::masking`]); not callable from SQL.

use datafusion::arrow::array::new_null_array;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::map_text;
use crate::privacy::{HashKeys, Masking};

/// One column's masking: the column in, its masked form (same type) out.
#[derive(Debug)]
pub(crate) struct MaskedColumn {
    signature: Signature,
    masking: Masking,
    keys: HashKeys,
}

impl PartialEq for MaskedColumn {
    fn eq(&self, other: &Self) -> bool {
        self.masking == other.masking
    }
}

impl Eq for MaskedColumn {}

impl std::hash::Hash for MaskedColumn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        format!("{:?}", self.masking).hash(state)
    }
}

impl MaskedColumn {
    pub(crate) fn new(masking: Masking, keys: HashKeys) -> Self {
        MaskedColumn {
            signature: Signature::any(1, Volatility::Immutable),
            masking,
            keys,
        }
    }
}

impl ScalarUDFImpl for MaskedColumn {
    fn name(&self) -> &str {
        "martdb_masked"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let values = args.args[0].to_array(args.number_rows)?;
        if self.masking == Masking::Null {
            return Ok(ColumnarValue::Array(new_null_array(
                values.data_type(),
                values.len(),
            )));
        }
        let masked = map_text(&values, |_, value| self.masking.apply(&self.keys, value))?;
        Ok(ColumnarValue::Array(masked))
    }
}
