"""Camera capture: a photograph of a physical painting turned into a straightened artwork.

``detect`` finds the painting's canvas inside its frame and straightens it, ``quality`` says
whether a shot is good enough (and what to do when it is not), ``burst`` picks the best frame
of a few, ``recognise`` finds the same painting in the catalog, ``source`` reads frames from
a camera, a stream, a video file or a still image, ``keep`` stores captures in the catalog and
purges them as the configuration says, and ``cli`` is ``art2mus capture``. No Qt here: the
kiosk's camera view (installation/kiosk/camera_*.py) drives these modules.

Frames are BGR uint8 arrays, as OpenCV's cameras deliver them.
"""
