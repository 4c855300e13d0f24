"""fastai_audio.inference: predict_files and predict_windows."""

import numpy as np
import pytest


def test_predict_files_returns_a_table_in_file_order(df_learner, toy_folder):
    from fastai_audio.inference import predict_files

    files = sorted((toy_folder / "valid").rglob("*.wav"))[::-1]
    df = predict_files(df_learner, files, bs=3)
    assert list(df.path) == [str(f) for f in files] and list(df.columns[:3]) == ["path", "prediction", "probability"]
    assert set(df.prediction) <= {"high", "low"}
    np_probs = df[["high", "low"]].to_numpy()
    assert abs(np_probs.sum(1) - 1).max() < 1e-5 and (df.probability == np_probs.max(1)).all()
    single = df_learner.predict(files[0])[2]
    assert abs(float(single[0]) - df.loc[0, "high"]) < 1e-5


@pytest.mark.parametrize("seconds", [5.5, 5.3, 0.6])
def test_windows_cover_a_long_file_exactly(df_learner, tmp_path, seconds):
    import matplotlib.pyplot as plt
    import soundfile as sf
    from conftest import sine

    from fastai_audio.inference import plot_taggram, predict_windows

    path = tmp_path / "long.wav"
    sf.write(str(path), sine(220, 16000, seconds).T, 16000)
    res = predict_windows(df_learner, path, hop=0.5)  # window: the 1.0 s the model was trained on
    n = 1 if seconds <= 1.0 else int(np.ceil((seconds - 1.0) / 0.5)) + 1
    assert res.window == 1.0 and len(res.starts) == n and res.probs.shape == (n, 2)
    assert res.starts[0] == 0 and (np.diff(res.starts) == 0.5).all()
    assert res.starts[-1] + res.window >= seconds > res.starts[-1]  # the last window reaches the end, no gaps
    assert res.starts[-1] + res.window - seconds < 0.5  # and does not overshoot by a whole hop
    np.testing.assert_allclose(res.clip_probs, res.probs.mean(0), rtol=1e-6)
    assert res.label == res.classes[int(res.clip_probs.argmax())] and len(res.to_df()) == n
    ax = plot_taggram(res)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["high", "low"]
    plt.close("all")


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"hop": 1e-300}, "hop must be a number of seconds from 0.005"),
        ({"window": float("inf")}, "window must be a number of seconds"),
        ({"window": 0.01}, "from 0.1"),
        ({"hop": 0.005, "max_windows": 100}, "gives 1001 windows, more than the 100 allowed"),
    ],
)
def test_windows_out_of_bounds_are_refused_before_any_is_made(df_learner, kwargs, reason):
    from fastai_audio.errors import ParameterError
    from fastai_audio.inference import predict_windows

    with pytest.raises(ParameterError, match=reason):  # (before, hop=1e-300 built windows without end)
        predict_windows(df_learner, np.zeros(6 * 16000, np.float32), sample_rate=16000, **kwargs)
