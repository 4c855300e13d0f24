"""How fastai shows results and top losses for audio: methods of fastai's ``show_results`` and ``plot_top_losses``
for batches of ``TensorAudio`` or ``TensorSpectrogram`` inputs (plum dispatch, as fastai does for images)."""

from __future__ import annotations

from fastai.torch_core import TensorCategory, TensorMultiCategory
from fastai.vision.data import get_grid
from plum import dispatch

from .core import TensorAudio, TensorSpectrogram

__all__ = []  # nothing to call: importing this module registers the methods

_AudioTypes = TensorAudio | TensorSpectrogram


def _grid(n, nrows, ncols, figsize, title=None):
    cols = ncols or min(n, 3)
    return get_grid(n, nrows=nrows, ncols=cols, figsize=figsize or (4 * cols, 2.6 * -(-n // cols)), title=title)


@dispatch
def show_results(x: _AudioTypes, y: TensorCategory, samples, outs, ctxs=None, max_n=9, nrows=None, ncols=None,
                 figsize=None, **kwargs):  # fmt: skip
    """Each clip titled ``target/prediction``, the prediction green when right and red when wrong."""
    n = min(len(samples), max_n)
    if ctxs is None:
        ctxs = _grid(n, nrows, ncols, figsize)
    for ctx, sample, out, _ in zip(ctxs, samples, outs, range(n)):
        sample[0].show(ctx=ctx, **kwargs)
        ctx.set_title(f"{sample[1]}/{out[0]}", color="green" if str(sample[1]) == str(out[0]) else "red")
    ctxs[0].figure.tight_layout()
    return ctxs


@dispatch
def plot_top_losses(x: _AudioTypes, y: TensorCategory, samples, outs, raws, losses, nrows=None, ncols=None,
                    figsize=None, **kwargs):  # fmt: skip
    """Each clip titled ``prediction/actual / loss / probability of the prediction``."""
    axs = _grid(len(samples), nrows, ncols, figsize, title="Prediction/Actual/Loss/Probability")
    for ax, s, o, r, l in zip(axs, samples, outs, raws, losses):
        s[0].show(ctx=ax, **kwargs)
        ax.set_title(f"{o[0]}/{s[1]} / {l.item():.2f} / {r.max().item():.2f}")
    axs[0].figure.tight_layout()
    return axs


@dispatch
def plot_top_losses(x: _AudioTypes, y: TensorMultiCategory, samples, outs, raws, losses, nrows=None, ncols=None,  # noqa: F811
                    figsize=None, **kwargs):  # fmt: skip
    """Multi-label: each clip titled ``actual -> predicted`` labels and its loss."""
    axs = _grid(len(samples), nrows, ncols, figsize)
    for ax, s, o, l in zip(axs, samples, outs, losses):
        s[0].show(ctx=ax, **kwargs)
        ax.set_title(f"{';'.join(map(str, s[1]))} -> {';'.join(map(str, o[0]))} / {l.item():.2f}", fontsize=8)
    axs[0].figure.tight_layout()
    return axs
