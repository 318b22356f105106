"""What a model looks at, clean vs adversarial: attribution maps (saliency, SmoothGrad,
Integrated Gradients, CAM, Grad-CAM, Grad-CAM++), their fragility under attack, faithfulness
(deletion/insertion), the model-randomisation sanity check, and SE channel attention.

Library code: no Hydra, OmegaConf or W&B. captum provides Saliency, NoiseTunnel,
IntegratedGradients and LayerGradCam; CAM and Grad-CAM++ are implemented here.
"""

from robustlab.explain import (  # importing a method's module registers it
    cam,  # noqa: F401
    gradcam,  # noqa: F401
    gradcampp,  # noqa: F401
    integrated_gradients,  # noqa: F401
    saliency,  # noqa: F401
    smoothgrad,  # noqa: F401
)
from robustlab.explain.attribute import attribute, importance
from robustlab.explain.clean_vs_adversarial import DEFAULT_METHODS, explain_robustness
from robustlab.explain.compare import spearman, topk_intersection
from robustlab.explain.display import ExplanationDisplay
from robustlab.explain.faithfulness import FaithfulnessCurves, deletion_insertion
from robustlab.explain.integrated_gradients import completeness_error
from robustlab.explain.inversion import ClassVisualization, Inversion, invert, visualize_class
from robustlab.explain.inversion_study import InversionStudy, inversion_study
from robustlab.explain.layers import stage_layer
from robustlab.explain.plots import plot_explanations
from robustlab.explain.registry import (
    attribution_options,
    create_attribution,
    list_attributions,
    register_attribution,
)
from robustlab.explain.sanity import randomization_correlation, randomized_copy
from robustlab.explain.se_attention import record_excitations, se_blocks
from robustlab.explain.se_plots import plot_se_attention
from robustlab.explain.se_shift import SEAttention, se_attention_shift
from robustlab.explain.summary import ExplanationReport

__all__ = [
    "ClassVisualization",
    "Inversion",
    "InversionStudy",
    "invert",
    "inversion_study",
    "visualize_class",
    "DEFAULT_METHODS",
    "ExplanationDisplay",
    "ExplanationReport",
    "FaithfulnessCurves",
    "SEAttention",
    "attribute",
    "attribution_options",
    "completeness_error",
    "create_attribution",
    "deletion_insertion",
    "explain_robustness",
    "importance",
    "list_attributions",
    "plot_explanations",
    "plot_se_attention",
    "randomization_correlation",
    "randomized_copy",
    "register_attribution",
    "record_excitations",
    "se_attention_shift",
    "se_blocks",
    "spearman",
    "stage_layer",
    "topk_intersection",
]
