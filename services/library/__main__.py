from services.kit.service import serve
from services.library.main import create_app

serve(create_app())
