"""Training: the Trainer loop, checkpoints, metrics and plots (chapter 12_training)."""

from .checkpoint import CheckpointError, checkpoint_info, load_checkpoint, save_checkpoint
from .metrics import accuracy, compute_confusion_matrix, evaluate_model
from .plots import plot_confusion_matrix, plot_training_history
from .trainer import History, Trainer
