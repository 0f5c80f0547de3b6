"""The brush studio (`wanjax studio`, the `studio` extra): paint motion brushes on a first frame in a browser, see
their tracks, generate the video, download both.

    from wanjax.studio.app import launch
    page = launch("configs/brushsprites.yaml", block=False)   # http://127.0.0.1:7860; inline in a notebook

Modules: `draft` (the brush file being edited, pure edits), `canvas` (what the canvas shows), `engine` (the model,
loaded once), `workdir` (bounded temporary files), `app` (the Gradio page; the only one that imports gradio).
"""
