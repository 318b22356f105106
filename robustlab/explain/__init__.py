"""What a model looks at, clean vs adversarial: attribution maps (saliency, SmoothGrad,
Integrated Gradients, CAM, Grad-CAM, Grad-CAM++), their fragility under attack, faithfulness
(deletion/insertion), the model-randomisation sanity check, and SE channel attention.

Library code: no Hydra, OmegaConf or W&B. captum provides Saliency, NoiseTunnel,
IntegratedGradients and LayerGradCam; CAM and Grad-CAM++ are implemented here.
"""

from robustlab.explain.attribute import (
    METHODS,
    attribute,
    importance,
    list_methods,
    method_options,
)
from robustlab.explain.clean_vs_adversarial import DEFAULT_METHODS, explain_robustness
from robustlab.explain.compare import spearman, topk_intersection
from robustlab.explain.faithfulness import FaithfulnessCurves, deletion_insertion
from robustlab.explain.integrated_gradients import completeness_error
from robustlab.explain.layers import stage_layer
from robustlab.explain.plots import plot_explanations
from robustlab.explain.sanity import randomisation_correlation, randomized_copy
from robustlab.explain.se_attention import record_excitations, se_blocks
from robustlab.explain.se_plots import plot_se_attention
from robustlab.explain.se_shift import SEAttention, se_attention_shift
from robustlab.explain.summary import ExplanationReport

__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "ExplanationReport",
    "FaithfulnessCurves",
    "SEAttention",
    "attribute",
    "completeness_error",
    "deletion_insertion",
    "explain_robustness",
    "importance",
    "list_methods",
    "method_options",
    "plot_explanations",
    "plot_se_attention",
    "randomisation_correlation",
    "randomized_copy",
    "record_excitations",
    "se_attention_shift",
    "se_blocks",
    "spearman",
    "stage_layer",
    "topk_intersection",
]
