"""Text-to-video priors behind one interface (`VideoPrior`)."""
from .base import PromptEmbeds, VideoPrior, sds_gradient

__all__ = ["PromptEmbeds", "VideoPrior", "sds_gradient"]
