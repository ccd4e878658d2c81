//! `person_id(id_type, id)`: the person of an identifier in the stored identity graph.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::DataFusionError;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::identity::IdentityGraph;
use crate::udf::bitmap::{coerce_text, finish, row_count};

const NAME: &str = "person_id";

#[derive(Debug)]
pub struct PersonId {
    graph: IdentityGraph,
    signature: Signature,
}

impl PersonId {
    pub fn new(graph: IdentityGraph) -> Self {
        PersonId {
            graph,
            // Volatile: the graph changes between statements, so a call must not be
            // folded into a plan that outlives one (a prepared statement's).
            signature: Signature::user_defined(Volatility::Volatile),
        }
    }
}

impl PartialEq for PersonId {
    fn eq(&self, _other: &Self) -> bool {
        // One graph per engine, one instance per engine.
        true
    }
}

impl Eq for PersonId {}

impl std::hash::Hash for PersonId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state)
    }
}

static DOCUMENTATION: LazyLock<Documentation> =
    LazyLock::new(|| {
        Documentation::builder(
        super::SECTION,
        "The person id of an identifier in the stored identity graph (built by \
         `identity_update`), or NULL when the graph does not hold it (never seen, or a \
         blocked value) or an argument is NULL. All rows of a batch are read in one \
         transaction. For joins over many rows, joining `martdb.identity_map` on \
         (id_type, id) reads the graph once instead.",
        "person_id(id_type, id)",
    )
    .with_sql_example(
        "```sql\n> SELECT o.order_id, person_id('phone', o.phone) AS person FROM orders o;\n```",
    )
    .with_argument("id_type", "The identifier's type, e.g. 'phone', 'device', 'email'.")
    .with_argument("id", "The identifier's value; other types compare as their text.")
    .build()
    });

impl ScalarUDFImpl for PersonId {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_text(NAME, arg_types, &["id_type", "id"])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let types = args.args[0].to_array(rows)?;
        let ids = args.args[1].to_array(rows)?;
        let (types, ids) = (types.as_string::<i32>(), ids.as_string::<i32>());
        let keys = (0..rows).map(|row| {
            (types.is_valid(row) && ids.is_valid(row)).then(|| (types.value(row), ids.value(row)))
        });
        let persons = self
            .graph
            .person_ids(keys)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        finish(Arc::new(Int64Array::from(persons)), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}
