"""The Gradio page: tabs for animation, segmentation overlays and part swap.

Every handler goes through :func:`_guarded`, which turns an :class:`~mraa.errors.MRAAError` (a bad upload, a
bad option) or any other exception into a message in the tab's status box and a pop-up warning, so a bad
request never takes the server down. The model is shared: model-running events have one queue slot.
"""

from __future__ import annotations

import functools
import html
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from mraa.animate import MODES
from mraa.app.service import BACKGROUND_CHOICES, CROP_OPTIONS, AnimationService
from mraa.errors import MRAAError

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 1e-3  # as mraa.segmentation, which this module does not import (it may be absent)
MODEL_QUEUE = "model"  # concurrency id shared by every event that runs the network

MODE_HELP = (
    "auto: as `mraa animate` chooses (the model's mode; relative for a photo with the shipped model); "
    "standard: the driving regions as they are; relative: the driving motion since its first frame, applied "
    "to the source; avd: the shape-pose disentanglement network (needs a trained AVD network)"
)
BACKGROUND_HELP = (
    "still; left / right (SPEED per frame in [-1, 1] units, e.g. left:0.02); rotate (degrees per frame, e.g. "
    "rotate:1); driving (the camera motion of the driving video); or six numbers a,b,c,d,e,f (a fixed affine)"
)
CROP_HELP = (
    "auto: as the model's training data was framed; face / upper-body / full-body: a square around the "
    "subject found in each input; center: the largest centred square; none: the whole picture, resized"
)
CSS = """
.mraa-preview img { width: 100%; height: 100%; object-fit: contain; }
#animate-status p, #segment-status p, #swap-status p { font-size: 1.05em; }
.mraa-error { color: var(--error-text-color, #b91c1c); font-weight: 600; }
"""


def _no_analytics() -> None:
    """Gradio sends usage statistics unless told not to; it reads this variable when it would send them."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def error_markdown(message: str) -> str:
    """The status box text for an error."""
    return f'<span class="mraa-error">Error: {html.escape(message)}</span>'


def _guarded(num_outputs: int, status_index: int, reset: tuple[int, ...] = ()) -> Callable:
    """Wrap a handler: on failure the status box shows the error, the outputs at ``reset`` are emptied and
    the others are left as they are."""

    def decorate(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            except MRAAError as exc:
                message = str(exc)
                log.info("request refused: %s", message)
            except Exception as exc:  # a bug: keep serving, say so, log the traceback
                log.exception("handler %s failed", handler.__name__)
                message = f"unexpected {exc.__class__.__name__}: {exc}"
            gr.Warning(message)
            outputs: list[Any] = [None if i in reset else gr.skip() for i in range(num_outputs)]
            outputs[status_index] = error_markdown(message)
            return tuple(outputs) if num_outputs > 1 else outputs[0]

        return wrapper

    return decorate


def build_ui(service: AnimationService, segmentation: bool = True) -> gr.Blocks:
    """The whole page as a ``gr.Blocks`` (not launched). Without ``segmentation`` (a build without
    :mod:`mraa.segmentation`) the segmentation and swap tabs only say that they are not available."""
    _no_analytics()
    # delete_cache: Gradio's copies of uploads and results older than an hour are removed every hour
    with gr.Blocks(title="mraa", analytics_enabled=False, delete_cache=(3600, 3600)) as blocks:
        gr.Markdown(
            "# mraa: Motion Representations for Articulated Animation\n"
            "Re-pose the object in a still image with the motion of a driving video. " + service.describe(),
            elem_id="header",
        )
        inputs = _inputs_section(service)
        with gr.Tabs():
            with gr.Tab("Animate", id="animate", elem_id="animate-tab"):
                _animate_tab(service, inputs)
            with gr.Tab("Segmentation", id="segment", elem_id="segment-tab"):
                if segmentation:
                    _segmentation_tab(service, inputs)
                else:
                    gr.Markdown(UNAVAILABLE.format(what="Segmentation overlays"), elem_id="segment-status")
            with gr.Tab("Part swap", id="swap", elem_id="swap-tab"):
                if segmentation:
                    _swap_tab(service, inputs)
                else:
                    gr.Markdown(UNAVAILABLE.format(what="Part swap"), elem_id="swap-status")
    return blocks


UNAVAILABLE = "{what} is not available in this build of mraa (it has no `mraa.segmentation` module)."


class _Inputs:
    """The input components shared by the tabs."""

    def __init__(self, source: gr.File, driving: gr.File, crop: gr.Dropdown) -> None:
        self.source, self.driving, self.crop = source, driving, crop

    @property
    def all(self) -> list[gr.components.Component]:
        return [self.source, self.driving, self.crop]


def _inputs_section(service: AnimationService) -> _Inputs:
    samples = service.samples
    with gr.Row():
        with gr.Column(scale=1):
            source_file = gr.File(
                label="Source image (png, jpg, webp, bmp, tiff)", type="filepath", elem_id="source-upload"
            )
            driving_file = gr.File(
                label="Driving video (mp4, webm, mov, avi, mkv, gif)",
                type="filepath",
                elem_id="driving-upload",
            )
            with gr.Row():
                samples_button = gr.Button(
                    "Use the sample image and video" if samples.available else "No samples in this build",
                    interactive=samples.available,
                    size="md",
                    elem_id="samples-button",
                )
                crop = gr.Dropdown(
                    list(CROP_OPTIONS), value="auto", label="Crop", info=CROP_HELP, elem_id="crop"
                )
        with gr.Column(scale=1), gr.Row():
            with gr.Column(min_width=160):
                source_preview = gr.Image(
                    label="Source, as the model sees it",
                    interactive=False,
                    height=200,
                    elem_id="source-preview",
                    elem_classes="mraa-preview",
                )
                source_status = gr.Markdown("Upload a source image.", elem_id="source-status")
            with gr.Column(min_width=160):
                driving_preview = gr.Image(
                    label="Driving, first frame",
                    interactive=False,
                    height=200,
                    elem_id="driving-preview",
                    elem_classes="mraa-preview",
                )
                driving_status = gr.Markdown("Upload a driving video.", elem_id="driving-status")

    source_outputs, driving_outputs = [source_preview, source_status], [driving_preview, driving_status]
    _wire_inputs(service, source_file, driving_file, crop, samples_button, source_outputs, driving_outputs)
    return _Inputs(source_file, driving_file, crop)


def _wire_inputs(service: AnimationService, source_file, driving_file, crop, samples_button, source_outputs,
                 driving_outputs) -> None:  # fmt: skip
    """Show each upload as the model sees it (cropped) when it, or the crop option, changes."""
    samples = service.samples

    @_guarded(2, 1, reset=(0,))
    def show_source(path: str | None, crop_inputs: str) -> tuple[Any, str]:
        if not path:
            return None, "Upload a source image."
        _, image = service.load_source(path, crop_inputs)
        return image, f"Source {os.path.basename(path)} is ready."

    @_guarded(2, 1, reset=(0,))
    def show_driving(path: str | None, crop_inputs: str) -> tuple[Any, str]:
        if not path:
            return None, "Upload a driving video."
        frame, line = service.inspect_driving(path, crop_inputs)
        return frame, line[0].upper() + line[1:] + " is ready."

    def use_samples() -> tuple[str | None, str | None]:
        return (
            str(samples.source) if samples.source else None,
            str(samples.driving) if samples.driving else None,
        )

    private = {"api_visibility": "private"}  # page plumbing, not part of the app's API
    source_file.change(show_source, [source_file, crop], source_outputs, concurrency_limit=4, **private)
    driving_file.change(show_driving, [driving_file, crop], driving_outputs, concurrency_limit=4, **private)
    crop.change(show_source, [source_file, crop], source_outputs, **private).then(
        show_driving, [driving_file, crop], driving_outputs, **private
    )
    samples_button.click(use_samples, None, [source_file, driving_file], **private)


def _progress_reporter(progress: gr.Progress, desc: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        progress((done, total), desc=desc, unit="frames")

    return report


def _done_line(what: str, num_frames: int, fps: float, seconds: float, notes: list[str]) -> str:
    lines = [
        f"Done: {what}, {num_frames} frames at {fps:g} fps in {seconds:.1f} s. "
        "Play it here; the download button is on the video."
    ]
    lines += [f"Note: {note}." for note in notes]
    return "\n\n".join(lines)


# ----------------------------------------------------------------------------- animate
class _AnimateControls:
    """The animate tab's components."""

    def __init__(self, service: AnimationService) -> None:
        with gr.Row():
            with gr.Column(scale=1):
                self.mode = gr.Radio(
                    ["auto", *MODES],
                    value="auto",
                    label="Mode",
                    info=MODE_HELP,
                    elem_id="mode",
                )
                self.background = gr.Dropdown(
                    list(BACKGROUND_CHOICES), value="still", allow_custom_value=True, label="Background",
                    info=BACKGROUND_HELP, elem_id="background",
                )  # fmt: skip
                with gr.Row():
                    self.paste_back = gr.Checkbox(
                        False, label="Paste back into the full source", elem_id="paste-back"
                    )
                    self.output_size = gr.Textbox(
                        "",
                        label="Output size WxH (optional)",
                        placeholder="e.g. 1280x720",
                        elem_id="output-size",
                    )
                with gr.Row():
                    self.preview_button = gr.Button("Preview crop", elem_id="crop-preview-button")
                    self.run_button = gr.Button("Animate", variant="primary", elem_id="run-button")
            with gr.Column(scale=1):
                self.preview = gr.Image(
                    label="Crop boxes: source (red), driving shots (blue)", interactive=False, height=200,
                    elem_id="crop-preview", elem_classes="mraa-preview",
                )  # fmt: skip
                self.result = _result_video("Result", "result-video")
                self.status = gr.Markdown("Choose a mode and press Animate.", elem_id="animate-status")


def _animate_tab(service: AnimationService, inputs: _Inputs) -> None:
    controls = _AnimateControls(service)

    @_guarded(2, 1, reset=(0,))
    def preview(source_path: str | None, driving_path: str | None, crop_inputs: str) -> tuple[Any, str]:
        return service.crop_preview(source_path, driving_path, crop_inputs)

    @_guarded(2, 1)
    def run(
        source_path: str | None,
        driving_path: str | None,
        crop_inputs: str,
        mode_name: str,
        background_spec: str,
        paste_back: bool,
        output_size: str,
        progress: gr.Progress = gr.Progress(),  # noqa: B008  (how Gradio hands out a progress bar)
    ) -> tuple[Any, str]:
        start = time.perf_counter()
        report = _progress_reporter(progress, "animating")
        out = service.animate(
            source_path,
            driving_path,
            mode_name,
            background_spec,
            crop_inputs,
            report,
            paste_back,
            output_size,
        )
        seconds = time.perf_counter() - start
        return str(out.video), _done_line(f"mode {out.mode}", out.num_frames, out.fps, seconds, out.notes)

    controls.preview_button.click(
        preview, inputs.all, [controls.preview, controls.status], api_name="crop_preview", concurrency_limit=2
    )
    controls.run_button.click(
        run,
        [*inputs.all, controls.mode, controls.background, controls.paste_back, controls.output_size],
        [controls.result, controls.status],
        api_name="animate",
        concurrency_id=MODEL_QUEUE,
        concurrency_limit=1,
    )


# ----------------------------------------------------------------------------- segmentation
def _shares_table(shares: np.ndarray, title: str) -> str:
    rows = [f"| {title} | " + " | ".join(f"{k}" for k in range(1, len(shares))) + " | background |"]
    rows.append("|---" * (len(shares) + 1) + "|")
    rows.append("| % of pixels | " + " | ".join(f"{v:.1f}" for v in shares[1:]) + f" | {shares[0]:.1f} |")
    return "\n".join(rows)


def _result_video(label: str, elem_id: str) -> gr.Video:
    """A looping, downloadable result video (the animate and swap tabs)."""
    return gr.Video(
        label=label,
        interactive=False,
        autoplay=True,
        loop=True,
        buttons=["download"],
        height=300,
        elem_id=elem_id,
    )


def _threshold_slider(elem_id: str) -> gr.Number:
    return gr.Number(
        value=DEFAULT_THRESHOLD,
        minimum=0,
        step=0.0005,
        label="Background threshold",
        info="a pixel is background when the region heatmaps sum to less than this (paper: 0.001)",
        elem_id=elem_id,
    )


def _segmentation_tab(service: AnimationService, inputs: _Inputs) -> None:
    gr.Markdown(
        "Co-part segmentation from the region heatmaps: each pixel gets the part whose heatmap is largest, "
        "or the background where they are all small. Parts are numbered as in `mraa segment` and `mraa swap`."
    )
    with gr.Row():
        with gr.Column(scale=1):
            threshold = _threshold_slider("segment-threshold")
            segment_button = gr.Button("Segment", variant="primary", elem_id="segment-button")
        with gr.Column(scale=2):
            with gr.Row():
                source_overlay = gr.Image(
                    label="Source parts", interactive=False, height=300, elem_id="segment-source"
                )
                driving_overlay = gr.Video(
                    label="Driving parts",
                    interactive=False,
                    autoplay=True,
                    loop=True,
                    height=300,
                    elem_id="segment-driving",
                )
            status = gr.Markdown(
                "Press Segment to see the parts of the source and the driving video.",
                elem_id="segment-status",
            )

    @_guarded(3, 2)
    def run(
        source_path: str | None,
        driving_path: str | None,
        crop_inputs: str,
        threshold_value: float,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> tuple[Any, Any, str]:
        if not source_path and not driving_path:
            raise MRAAError("upload a source image or a driving video (or use the samples) first")
        start = time.perf_counter()
        tables, source_image, driving_video = [], None, None
        if source_path:
            view = service.segment_source(source_path, threshold_value, crop_inputs)
            source_image = view.overlay
            tables.append(_shares_table(view.shares, "source part"))
        if driving_path:
            report = _progress_reporter(progress, "segmenting")
            view, video = service.segment_driving(driving_path, threshold_value, crop_inputs, report)
            driving_video = str(video)
            tables.append(_shares_table(view.shares, "driving part (first frame)"))
        seconds = time.perf_counter() - start
        return source_image, driving_video, f"Segmented in {seconds:.1f} s.\n\n" + "\n\n".join(tables)

    segment_button.click(
        run,
        [*inputs.all, threshold],
        [source_overlay, driving_overlay, status],
        api_name="segment",
        concurrency_id=MODEL_QUEUE,
        concurrency_limit=1,
    )


# ----------------------------------------------------------------------------- part swap
class _SwapControls:
    """The part-swap tab's components."""

    def __init__(self, num_parts: int) -> None:
        gr.Markdown(
            "Give chosen parts of the driving video the appearance of the source: tick part numbers, or press "
            "*Show parts* and click on parts in the overlays (a click adds or removes the part under it)."
        )
        with gr.Row():
            with gr.Column(scale=1):
                self.parts = gr.CheckboxGroup(
                    [str(k) for k in range(1, num_parts + 1)], label="Parts to swap", elem_id="swap-parts"
                )
                self.show_button = gr.Button("Show parts", elem_id="swap-show-button")
                self.mode = gr.Radio(
                    list(MODES), value="standard", label="Mode", elem_id="swap-mode",
                    info="standard keeps the parts where the driving frame has them (recommended for swaps)",
                )  # fmt: skip
                self.feather = gr.Slider(
                    0, 10, value=0, step=0.5, label="Feather (mask blur, pixels)", elem_id="swap-feather"
                )
                self.threshold = _threshold_slider("swap-threshold")
                self.swap_button = gr.Button("Swap", variant="primary", elem_id="swap-button")
            with gr.Column(scale=2):
                with gr.Row():
                    self.source_overlay = gr.Image(
                        label="Source parts (click to choose)", interactive=False, elem_id="swap-source"
                    )
                    self.driving_overlay = gr.Image(
                        label="Driving parts, first frame (click to choose)", interactive=False,
                        elem_id="swap-driving",
                    )  # fmt: skip
                self.result = _result_video("Swap result", "swap-video")
                self.status = gr.Markdown("Choose parts, then press Swap.", elem_id="swap-status")
        self.source_labels = gr.State(None)
        self.driving_labels = gr.State(None)


def _pick_part(labels: np.ndarray | None, chosen: list[str] | None, evt: gr.SelectData) -> tuple[Any, str]:
    """A click on an overlay: add or remove the part under it."""
    chosen = list(chosen or [])
    if labels is None:
        return gr.skip(), "Press Show parts first."
    x, y = (int(v) for v in evt.index[:2])
    if not (0 <= y < labels.shape[0] and 0 <= x < labels.shape[1]):
        return gr.skip(), "That is the legend: click on a part in the picture."
    part = int(labels[y, x])
    if part == 0:
        return gr.skip(), "That pixel is background (part 0): click on a coloured part."
    name = str(part)
    if name in chosen:
        chosen.remove(name)
        message = f"Removed part {part}."
    else:
        chosen.append(name)
        message = f"Added part {part}."
    chosen.sort(key=int)
    return chosen, f"{message} Parts to swap: {', '.join(chosen) or 'none'}."


def _swap_tab(service: AnimationService, inputs: _Inputs) -> None:
    c = _SwapControls(service.num_regions)

    @_guarded(5, 4)
    def show(source_path: str | None, driving_path: str | None, crop_inputs: str, threshold_value: float):
        if not source_path or not driving_path:
            raise MRAAError("upload a source image and a driving video (or use the samples) first")
        source_view = service.segment_source(source_path, threshold_value, crop_inputs)
        driving_view, _ = service.segment_driving(driving_path, threshold_value, crop_inputs, first_only=True)
        message = "Click on a part in either overlay to add it to the swap, or click it again to remove it."
        return source_view.overlay, driving_view.overlay, source_view.labels, driving_view.labels, message

    @_guarded(2, 1)
    def run(
        source_path: str | None,
        driving_path: str | None,
        crop_inputs: str,
        chosen: list[str],
        mode_name: str,
        feather_px: float,
        threshold_value: float,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> tuple[Any, str]:
        start = time.perf_counter()
        report = _progress_reporter(progress, "swapping")
        out = service.swap(
            source_path, driving_path, chosen, mode_name, feather_px, threshold_value, crop_inputs, report
        )
        seconds = time.perf_counter() - start
        return str(out.video), _done_line(f"mode {out.mode}", out.num_frames, out.fps, seconds, out.notes)

    model = {"concurrency_id": MODEL_QUEUE, "concurrency_limit": 1}
    c.show_button.click(
        show, [*inputs.all, c.threshold], [c.source_overlay, c.driving_overlay, c.source_labels,
        c.driving_labels, c.status], api_visibility="private", **model,
    )  # fmt: skip
    c.source_overlay.select(
        _pick_part, [c.source_labels, c.parts], [c.parts, c.status], api_visibility="private"
    )
    c.driving_overlay.select(
        _pick_part, [c.driving_labels, c.parts], [c.parts, c.status], api_visibility="private"
    )
    c.swap_button.click(
        run,
        [*inputs.all, c.parts, c.mode, c.feather, c.threshold],
        [c.result, c.status],
        api_name="swap",
        **model,
    )


# ----------------------------------------------------------------------------- serving
def launch(
    blocks: gr.Blocks,
    service: AnimationService,
    host: str = "127.0.0.1",
    port: int = 7860,
    block: bool = True,
    queue_size: int = 16,
) -> str:
    """Serve the page; return its local URL. With ``block=False`` the server runs in a background thread
    (stop it with ``blocks.close()``)."""
    _no_analytics()
    # only the results and the two sample files may be served, not the folders around them
    allowed = [str(service.work_dir)]
    allowed += [str(p.resolve()) for p in (service.samples.source, service.samples.driving) if p is not None]
    blocks.queue(max_size=queue_size, default_concurrency_limit=1)
    try:
        _, local_url, _ = blocks.launch(
            server_name=host,
            server_port=port,
            prevent_thread_lock=True,
            max_file_size=int(service.limits.max_upload_mb * 1024 * 1024),
            allowed_paths=allowed,
            share=False,
            inbrowser=False,
            quiet=True,
            show_error=False,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            css=CSS,
        )
    except OSError as exc:
        log.debug("launch failed: %s", exc)
        raise MRAAError(
            f"cannot listen on {host} port {port} (is it in use?): choose another --port"
        ) from None
    if block:
        blocks.block_thread()
    return local_url
