"""The recognition pipeline, one module per step (the facade is :class:`emolens.Recognizer`):

- ``images``      read any image (file, bytes, array, PIL) as RGB uint8; refuse bad files clearly
- ``detectors/``  face detectors registered by name: retinaface (default), mtcnn, haar, yuface
- ``align``       rotate so the eyes are level, crop with a margin, resize to the model's input
- ``pipeline``    detect -> align -> classify, all faces of a call in one batch
- ``tracking``    stable face ids across frames, probabilities smoothed per track
- ``results``     typed results; to dict / JSON / CSV / pandas
- ``draw``        annotate images and frames
- ``video``, ``video_job``, ``timeline``, ``webcam``   streams in and out
- ``evaluate``    ``emolens evaluate --detect`` on folders of uncropped photos
- ``cli``         ``emolens predict``, ``video``, ``webcam``, ``detectors``
"""
