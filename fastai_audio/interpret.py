"""How fastai shows results and top losses for audio: methods of fastai's ``show_results`` and ``plot_top_losses``
for batches of ``TensorAudio`` or ``TensorSpectrogram`` inputs (plum dispatch, as fastai does for images), and
``AudioInterpretation``, whose ``plot_top_losses`` also shows a player for each clip in a notebook.

Importing this module only adds methods for the audio types: fastai's classes are left as they are, so image and
text users see no change.
"""

from __future__ import annotations

from . import _compat  # (first: it imports fastai with fastai's import-time warning silenced)

# isort: split
import html

from fastai.interpret import ClassificationInterpretation
from fastai.torch_core import TensorCategory, TensorMultiCategory
from fastai.vision.data import get_grid
from plum import dispatch

from . import core
from .core import TensorAudio, TensorSpectrogram

__all__ = ["AudioInterpretation", "top_losses_players"]  # importing this module also registers the plot methods

_AudioTypes = TensorAudio | TensorSpectrogram


def _grid(n, nrows, ncols, figsize, title=None):
    cols = ncols or min(n, 3)
    return get_grid(n, nrows=nrows, ncols=cols, figsize=figsize or (4 * cols, 2.6 * -(-n // cols)), title=title)


@dispatch
def show_results(
    x: _AudioTypes, y: TensorCategory, samples, outs, ctxs=None, max_n=9, nrows=None, ncols=None, figsize=None, **kwargs
):
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
def plot_top_losses(
    x: _AudioTypes, y: TensorCategory, samples, outs, raws, losses, nrows=None, ncols=None, figsize=None, **kwargs
):
    """Each clip titled ``prediction/actual / loss / probability of the prediction``."""
    axs = _grid(len(samples), nrows, ncols, figsize, title="Prediction/Actual/Loss/Probability")
    for ax, s, o, r, l in zip(axs, samples, outs, raws, losses):
        s[0].show(ctx=ax, **kwargs)
        ax.set_title(f"{o[0]}/{s[1]} / {l.item():.2f} / {r.max().item():.2f}")
    axs[0].figure.tight_layout()
    return axs


@dispatch
def plot_top_losses(  # noqa: F811  (a second method of the dispatched function)
    x: _AudioTypes,
    y: TensorMultiCategory,
    samples,
    outs,
    raws,
    losses,
    nrows=None,
    ncols=None,  # noqa: F811
    figsize=None,
    **kwargs,
):
    """Multi-label: each clip titled ``actual -> predicted`` labels and its loss."""
    axs = _grid(len(samples), nrows, ncols, figsize)
    for ax, s, o, l in zip(axs, samples, outs, losses):
        s[0].show(ctx=ax, **kwargs)
        ax.set_title(f"{';'.join(map(str, s[1]))} -> {';'.join(map(str, o[0]))} / {l.item():.2f}", fontsize=8)
    axs[0].figure.tight_layout()
    return axs


def top_losses_players(interp, k, largest: bool = True) -> str:
    """HTML: one row per top-loss clip (rank, file, loss) with an audio player of the clip as the model heard it.

    Args:
        interp: a fastai ``Interpretation`` (``ClassificationInterpretation.from_learner(learn)``) over audio data.
        k: number of clips, or a list/range of ranks, as in ``plot_top_losses``.
        largest: largest losses first.

    Returns:
        An HTML ``<table>`` string (``IPython.display.HTML`` displays it).

    Examples:
        >>> page = top_losses_players(interp, 2)   # in a notebook: IPython.display.HTML(page)
        >>> page.count("<audio")
        2
    """
    if isinstance(k, int):
        losses, idx = interp.top_losses(k, largest)
    else:
        losses, idx = (o[k] for o in interp.top_losses(None, largest))
    rows = []
    for rank, (loss, i) in enumerate(zip(losses.tolist(), idx.tolist()), 1):
        clip = interp.dl.dataset[i][0]
        name = getattr(clip, "path", None)
        name = name.name if name is not None else f"item {i}"
        player = clip.player()._repr_html_()
        rows.append(f"<tr><td>{rank}</td><td>{html.escape(name)}</td><td>{loss:.2f}</td><td>{player}</td></tr>")
    head = "<tr><th>#</th><th>file</th><th>loss</th><th>listen</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


class AudioInterpretation(ClassificationInterpretation):
    """fastai's ``ClassificationInterpretation`` (confusion matrix, ``most_confused``, ``top_losses``...) for audio
    classifiers; ``plot_top_losses`` also shows, in a notebook, a player for each clip exactly as the model heard it
    (the validation crop), so that the mistakes can be listened to.

    Examples:
        >>> interp = AudioInterpretation.from_learner(learn)
        >>> int(interp.confusion_matrix().sum()) == len(learn.dls.valid_ds)
        True
        >>> interp.plot_top_losses(3)              # the figure, plus a table of players in a notebook
    """

    def plot_top_losses(self, k, largest: bool = True, player: bool | None = None, **kwargs):
        """Show the ``k`` largest (or smallest) losses as fastai does; with ``player`` (default: inside a notebook)
        also display a player per clip (``top_losses_players``). ``k`` may be a list or range of ranks."""
        super().plot_top_losses(k, largest, **kwargs)
        if player is None:
            player = core._in_notebook()
        if player and len(self.dl.dataset) and isinstance(self.dl.dataset[0][0], TensorAudio):
            from IPython.display import HTML, display

            display(HTML(top_losses_players(self, k, largest)))


_compat.expect_dispatch(TensorAudio)  # check_framework checks that fastai dispatches the methods above
