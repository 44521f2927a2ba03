from services.kit.service import serve
from services.trainer.main import create_app

serve(create_app())
