"""The custom-loss example of docs/plugins.md, exactly: a term pulling the mean brightness to a target."""

import tensorflow as tf

from styled import LossTerm, hookimpl


@hookimpl
def register_losses(job):
    opts = job.plugin_options("brighten")  # None when the job did not ask for this plugin
    if opts is None:
        return []
    target = float(opts.get("target", 0.8))
    return [LossTerm("brightness", float(opts.get("weight", 10.0)),
                     lambda image, features: tf.square(tf.reduce_mean(image) - target))]
