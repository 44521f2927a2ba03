from services.kit.service import serve
from services.models.main import create_app

serve(create_app())
