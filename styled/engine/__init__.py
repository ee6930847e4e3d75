"""The engine: job specs, loss maths, optimisers, the Gatys and AdaIN renders.

It imports only styled.io, styled.nets and styled.settings, never the plugins or the daemon; a
render reaches plugins through the pluggy manager it is handed. Importing this package loads no
TensorFlow: ``spec``, ``job`` and ``types`` are light, ``render`` and the methods are not.
"""
