"""The GStreamer plugin folder of the element ``rmbg``, installed as the package ``rmbg_gstreamer``.

GStreamer finds the element with ``GST_PLUGIN_PATH`` set to this folder: gst-python's loader imports every
module of ``python/`` (the plugin file ``python/rmbg.py``), which registers the element of ``rmbg_gst``.
``rmbg-filter gst-plugin-path`` prints this folder, in the repository and in an installed wheel alike.
Nothing imports this package: it only gives the folder a name that an installed wheel can carry.
"""
