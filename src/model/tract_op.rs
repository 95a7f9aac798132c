//! Registers [`Forest`] in tract's ONNX operator table under
//! `TreeEnsembleClassifier`, replacing tract's own slow evaluator. The ONNX
//! file stays standard (onnxruntime runs it too); only the evaluator differs.

use super::forest::{Forest, ForestSpec};
use std::sync::Arc;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::ops::expandable::{expand, Expansion};

/// An ONNX parser whose `TreeEnsembleClassifier` is ours.
pub fn onnx_with_forest() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    onnx.op_register.insert("TreeEnsembleClassifier", build);
    onnx
}

fn build(
    _ctx: &tract_onnx::model::ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let labels: Vec<i64> = node
        .get_attr_opt_slice::<i64>("classlabels_int64s")?
        .ok_or_else(|| format_err!("{}: only integer class labels are supported", node.name))?
        .to_vec();
    let post: Option<String> = node.get_attr_opt("post_transform")?;
    if let Some(p) = post.as_deref().filter(|p| *p != "NONE") {
        bail!(
            "{}: post_transform {p} is not supported (only NONE)",
            node.name
        );
    }
    // Attributes are borrowed from the decoded node, never copied: a real
    // forest has hundreds of thousands of nodes.
    let ints = |name: &str| -> TractResult<&[i64]> { node.get_attr_slice(name) };
    let floats = |name: &str| -> TractResult<&[f32]> { node.get_attr_slice(name) };
    let modes: &[Vec<u8>] = node.get_attr_slice("nodes_modes")?;
    let forest = Forest::build(&ForestSpec {
        n_classes: labels.len(),
        nodes_treeids: ints("nodes_treeids")?,
        nodes_nodeids: ints("nodes_nodeids")?,
        nodes_featureids: ints("nodes_featureids")?,
        nodes_values: floats("nodes_values")?,
        nodes_modes: modes,
        nodes_truenodeids: ints("nodes_truenodeids")?,
        nodes_falsenodeids: ints("nodes_falsenodeids")?,
        class_treeids: ints("class_treeids")?,
        class_nodeids: ints("class_nodeids")?,
        class_ids: ints("class_ids")?,
        class_weights: floats("class_weights")?,
        base_values: node.get_attr_opt_slice::<f32>("base_values")?,
    })
    .map_err(|e| format_err!("{}: {e}", node.name))?;
    Ok((
        expand(ForestExpansion(ForestOp {
            forest: Arc::new(forest),
            labels: Arc::new(labels),
        })),
        vec![],
    ))
}

#[derive(Debug, Clone)]
struct ForestExpansion(ForestOp);

impl Expansion for ForestExpansion {
    fn name(&self) -> StaticName {
        "TreeEnsembleClassifier".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 2)?;
        s.equals(&outputs[0].datum_type, i64::datum_type())?;
        s.equals(&outputs[1].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].rank, 1)?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[1], self.0.labels.len().to_dim())?;
        Ok(())
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.0.clone(), inputs)
    }
}

/// Outputs: the winning class label per row (i64) and the summed class
/// scores (f32, rows × classes), as the ONNX operator defines them.
#[derive(Debug, Clone)]
pub struct ForestOp {
    forest: Arc<Forest>,
    labels: Arc<Vec<i64>>,
}

impl PartialEq for ForestOp {
    fn eq(&self, other: &Self) -> bool {
        (Arc::ptr_eq(&self.forest, &other.forest) || self.forest == other.forest)
            && self.labels == other.labels
    }
}

// Forests compare equal only to themselves: thresholds are never NaN (the
// exporter writes finite split points), so equality is reflexive.
impl Eq for ForestOp {}

impl Op for ForestOp {
    fn name(&self) -> StaticName {
        "TreeEnsembleClassifier(tutti)".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} trees, {} nodes",
            self.forest.n_trees(),
            self.forest.n_nodes()
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for ForestOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let input = input.cast_to::<f32>()?;
        let view = input.to_plain_array_view::<f32>()?;
        ensure!(
            view.ndim() == 2,
            "forest input must be rows × features, got shape {:?}",
            view.shape()
        );
        let (rows, width) = (view.shape()[0], view.shape()[1]);
        ensure!(
            width >= self.forest.n_features(),
            "forest reads feature {} but rows have {width}",
            self.forest.n_features() - 1
        );
        let c = self.forest.n_classes();
        let mut scores = vec![0.0f32; rows * c];
        let mut winners = vec![0i64; rows];
        let owned;
        let data = match view.as_slice() {
            Some(d) => d,
            None => {
                owned = view.iter().copied().collect::<Vec<f32>>();
                &owned
            }
        };
        for (r, out) in scores.chunks_mut(c).enumerate() {
            self.forest
                .predict_into(&data[r * width..(r + 1) * width], out);
            let best = out
                .iter()
                .enumerate()
                .fold(0, |b, (k, &v)| if v > out[b] { k } else { b });
            winners[r] = self.labels.get(best).copied().unwrap_or_default();
        }
        Ok(tvec!(
            tensor1(&winners).into_tvalue(),
            Tensor::from_shape(&[rows, c], &scores)?.into_tvalue()
        ))
    }
}

impl TypedOp for ForestOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape[0].clone();
        Ok(tvec!(
            i64::fact([n.clone()]),
            f32::fact([n, self.forest.n_classes().to_dim()])
        ))
    }

    as_op!();
}
