"""The recognition pipeline, one module per step (the facade is :class:`emolens.Recognizer`):

- ``images``      read any image (file, bytes, array, PIL) as RGB uint8; refuse bad files clearly
- ``detectors/``  face detectors registered by name: retinaface (default), mtcnn, haar, yuface
- ``align``       rotate so the eyes are level, crop with a margin, resize to the model's input
- ``pipeline``    detect -> align -> classify, all faces of a call in one batch
- ``tracking``    stable face ids across frames, probabilities smoothed per track
- ``streaming``   frames in, tracked results out; the detector every N frames, faces followed between
- ``results``     typed results; to dict / JSON / CSV / pandas; drawn (``plot``) and saved (``save``)
- ``draw``        annotate images and frames
- ``video``, ``video_job``, ``timeline``, ``webcam``   streams in and out (H.264 via PyAV, atomic files)
- ``batch``       image chunks and videos over worker processes, in order, with a progress bar
- ``evaluate``    ``emolens evaluate --detect`` on folders of uncropped photos
- ``cli``         ``emolens predict``, ``video``, ``webcam``, ``detectors``
"""
