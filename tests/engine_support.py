"""What the engine tests share: one scale of a tiny job, with its plugins' terms."""

from __future__ import annotations

from styled.engine import gatys
from styled.engine.job import load_job, relative_to
from styled.engine.spec import build_job_spec
from styled.engine.types import ScaleJob
from styled.nets.vgg import FeatureExtractor
from styled.nets.weights import load_backbone
from styled.plugins import make_plugin_manager, validate_job


def scale_terms(tiny_images, tmp_path, size, tile, halo, **spec):
    """The feature extractor, the loss terms and the ScaleJob of a one-scale job on the tiny images at
    ``size`` (its photo and painting resized to the scale), tiled with ``tile`` and ``halo`` (None, 0:
    untiled); ``spec`` adds to the job's settings."""
    import tensorflow as tf

    job_spec = build_job_spec({"content": str(tiny_images["content"]), "style": str(tiny_images["style"]),
                               "size": size, **spec})
    plugins = make_plugin_manager()
    job = validate_job(plugins, load_job(job_spec, relative_to(tmp_path)))
    extractor = FeatureExtractor(load_backbone("vgg19"), "avg", tf.float32)
    height, width = job.output_shape(size)
    content = tf.image.resize(tf.constant(job.content.pixels[None]), (height, width))
    styles = (tf.image.resize(tf.constant(job.styles[0].pixels[None]), (height, width)),)
    scale_job = ScaleJob(job, content, styles, (1.0,), 0, 1, extractor, tile, halo)
    return extractor, gatys.collect_terms(plugins, scale_job), scale_job
